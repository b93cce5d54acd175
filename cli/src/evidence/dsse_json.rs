//! The DSSE JSON form of an evidence bundle (`audit export --format
//! dsse-json`): one JSON document with the header, the public key of every
//! signer by key id, and every statement as a standard DSSE v1 JSON
//! envelope, in bundle order. Any DSSE verifier checks its signatures;
//! `audit verify` reads it back into the same items as the binary bundle
//! and verifies them through the same auditor.

use std::{
    fs::File,
    io::{BufWriter, Write},
};

use anyhow::Result;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tallytree_proto::{
    PublicKey,
    envelope::DsseJson,
    pb::{self, evidence_item::Item},
    statement,
};

/// What the document says about itself.
const NOTE: &str = "each envelope is a standard DSSE v1 JSON envelope; its signature is Ed25519 over PAE(payloadType, payload); keys are listed by keyid (hex SHA-256 of the raw key); the trust anchor's key comes from the anchor file";

/// Collects a bundle's items into the JSON document.
#[derive(Debug, Default)]
pub struct Writer {
    /// The header, as JSON.
    header: Value,
    /// Public keys by key id: the exporting node's and every enrolled one.
    keys: Map<String, Value>,
    /// `{"statement": kind, "envelope": DSSE JSON}` in bundle order.
    envelopes: Vec<Value>,
}

impl Writer {
    /// Adds one item (the trailer is left out: JSON has no partial read).
    pub fn push(&mut self, item: pb::EvidenceItem) {
        let (kind, env) = match item.item {
            Some(Item::Header(h)) => {
                self.header = json!({"format": h.format, "region": h.region, "period": h.period, "exported_by": h.exported_by, "exported_at_ms": h.exported_at_ms});
                if let Ok(k) = PublicKey::from_slice(&h.exported_by_key) {
                    self.keys.insert(k.key_id(), json!({"region": h.exported_by, "public_key": k.to_pem(), "note": "the exporting node's key; check it against your trust anchor"}));
                }
                return;
            }
            Some(Item::Enrolment(e)) => {
                // Listed for other verifiers' convenience; `audit verify`
                // trusts a key only through its verified enrolment.
                if let Ok(en) = statement::peek_unverified::<pb::Enrolment>(&e)
                    && let Ok(k) = PublicKey::from_slice(&en.public_key)
                {
                    self.keys.insert(
                        k.key_id(),
                        json!({"region": en.region, "name": en.name, "public_key": k.to_pem()}),
                    );
                }
                ("enrolment", e)
            }
            Some(Item::Revocation(r)) => ("revocation", r),
            Some(Item::Summary(s)) => ("summary", s),
            Some(Item::Receipt(r)) => ("receipt", r),
            Some(Item::Root(r)) => ("root", r),
            Some(Item::Trailer(_)) | None => return,
        };
        self.envelopes
            .push(json!({"statement": kind, "envelope": DsseJson::from_envelope(&env)}));
    }

    /// Writes the document.
    pub fn finish(self, mut out: BufWriter<File>) -> Result<()> {
        let doc = json!({
            "header": self.header,
            "note": NOTE,
            "keys": self.keys,
            "envelopes": self.envelopes,
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        out.flush()?;
        Ok(())
    }
}

/// The document as read; `keys` and `note` are for other verifiers.
#[derive(Deserialize)]
struct Document {
    header: Header,
    envelopes: Vec<Entry>,
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    format: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    period: String,
    #[serde(default)]
    exported_by: String,
    #[serde(default)]
    exported_at_ms: i64,
}

#[derive(Deserialize)]
struct Entry {
    statement: String,
    envelope: DsseJson,
}

/// Whether a file's first bytes look like a JSON object. A binary bundle
/// starts with a varint length and the header's tag (0x0A): even when the
/// length is 0x7B (`{`), the tag is whitespace and the length after it
/// is not `"`.
pub fn looks_like_json(start: &[u8]) -> bool {
    let mut rest = start.iter().skip_while(|b| b.is_ascii_whitespace());
    rest.next() == Some(&b'{')
        && matches!(
            rest.find(|b| !b.is_ascii_whitespace()),
            Some(b'"') | Some(b'}') | None
        )
}

/// The items of a DSSE JSON export, in bundle order, for the auditor.
pub fn read(text: &[u8]) -> Result<Vec<pb::EvidenceItem>, String> {
    let doc: Document = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    let h = doc.header;
    let mut items = vec![pb::EvidenceItem {
        item: Some(Item::Header(pb::EvidenceHeader {
            format: h.format,
            region: h.region,
            period: h.period,
            exported_by: h.exported_by,
            exported_at_ms: h.exported_at_ms,
            exported_by_key: Vec::new(),
        })),
    }];
    for (i, entry) in doc.envelopes.into_iter().enumerate() {
        let env = entry
            .envelope
            .to_envelope()
            .map_err(|e| format!("envelopes[{i}].envelope: {e}"))?;
        let item = match entry.statement.as_str() {
            "enrolment" => Item::Enrolment(env),
            "revocation" => Item::Revocation(env),
            "summary" => Item::Summary(env),
            "receipt" => Item::Receipt(env),
            "root" => Item::Root(env),
            other => {
                return Err(format!(
                    "envelopes[{i}].statement: {other:?} is not one of enrolment, revocation, summary, receipt"
                ));
            }
        };
        items.push(pb::EvidenceItem { item: Some(item) });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_told_from_a_binary_bundle() {
        assert!(looks_like_json(b"{\n  \"header\": {"));
        assert!(looks_like_json(b"  {}"));
        // A bundle whose header item is 123 bytes long starts with `{`.
        assert!(!looks_like_json(&[0x7B, 0x0A, 0x79, 0x0A, 0x15]));
        assert!(!looks_like_json(b"\x0a\x10"));
        assert!(!looks_like_json(b""));
    }

    #[test]
    fn a_document_reads_back_into_bundle_items() {
        let (key, _) = tallytree_proto::SigningKey::generate().expect("key");
        let summary = pb::Summary {
            region: "210214000000".into(),
            ..Default::default()
        };
        let env = statement::seal(&key, &summary).envelope;
        let mut w = Writer::default();
        w.push(pb::EvidenceItem {
            item: Some(Item::Header(pb::EvidenceHeader {
                region: "210214000000".into(),
                period: "2026-03".into(),
                ..Default::default()
            })),
        });
        w.push(pb::EvidenceItem {
            item: Some(Item::Summary(env.clone())),
        });
        let doc =
            json!({"header": w.header, "note": NOTE, "keys": w.keys, "envelopes": w.envelopes});
        let items = read(doc.to_string().as_bytes()).expect("reads");
        assert_eq!(items.len(), 2);
        assert!(matches!(&items[0].item, Some(Item::Header(h)) if h.period == "2026-03"));
        assert_eq!(items[1].item, Some(Item::Summary(env)));

        let err = read(br#"{"enrolment": {}, "parent_public_key": ""}"#).err();
        assert!(err.is_some_and(|e| e.contains("missing field")));
        let bad = json!({"header": {}, "envelopes": [{"statement": "memo", "envelope": {"payload": "", "payloadType": "x", "signatures": []}}]});
        let err = read(bad.to_string().as_bytes()).expect_err("unknown kind");
        assert!(err.starts_with("envelopes[0].statement"), "{err}");
    }
}
