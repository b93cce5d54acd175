//! Every signed summary revision verifies with the node's public key through
//! the standard DSSE JSON form, revisions strictly increase, and a bulk
//! change yields one new revision, not one per row.

mod common;

use common::{Clients, NAME, REGION, SUMMARY_TYPE, Unit, chunk, import_rows, open_cases};
use tallytree_node::config::SignerConfig;
use tallytree_proto::{
    Digest, PublicKey, SigningKey,
    envelope::{self, DsseJson, EnvelopeError},
    pb, statement,
};

/// Checks `env` the way a third party would: serialise to DSSE JSON text,
/// parse it back, verify, and only then decode.
fn verify_as_auditor(env: &pb::Envelope, key: &PublicKey) -> pb::Summary {
    let text = serde_json::to_string(&DsseJson::from_envelope(env)).expect("json");

    // The standard field names and encodings, nothing else.
    let value: serde_json::Value = serde_json::from_str(&text).expect("valid json");
    let object = value.as_object().expect("an object");
    let mut fields: Vec<&str> = object.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["payload", "payloadType", "signatures"], "{text}");
    assert_eq!(value["payloadType"], SUMMARY_TYPE);
    let signatures = value["signatures"].as_array().expect("signatures");
    assert_eq!(signatures.len(), 1, "{text}");
    assert_eq!(signatures[0]["keyid"], key.key_id());
    let sig = signatures[0]["sig"].as_str().expect("sig");
    assert_eq!(sig.len(), 88, "64 bytes in padded standard base64: {sig}");

    let parsed = DsseJson::parse(&text)
        .expect("parses")
        .to_envelope()
        .expect("decodes");
    assert_eq!(&parsed, env, "the JSON form round-trips exactly");
    envelope::verify(&parsed, SUMMARY_TYPE, key).expect("signature verifies");
    statement::peek_unverified(&parsed).expect("a summary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_revision_verifies_through_the_dsse_json_form() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();
    let key = unit.public_key();

    // Several revisions of two months.
    for round in 0..3 {
        c.record_cases(open_cases(&format!("R{round}"), 10, "2026-01-10"))
            .await;
        c.wait_row("2026-01", |r| common::registered(r) == 10 * (round + 1))
            .await;
    }
    c.record_cases(open_cases("M", 4, "2026-03-03")).await;
    c.record_tasks(vec![common::task(
        "T",
        "2026-03-31",
        pb::TaskState::Completed,
    )])
    .await;
    c.wait_row("2026-03", |r| {
        r.total.as_ref().and_then(|t| t.tasks).map(|t| t.assigned) == Some(1)
    })
    .await;

    for month in ["2026-01", "2026-03"] {
        let envelopes = c.revisions(month).await;
        assert!(!envelopes.is_empty(), "{month}");
        let mut last_revision = 0;
        let mut last_issued = 0;
        for env in &envelopes {
            let summary = verify_as_auditor(env, &key);
            assert_eq!(summary.region, REGION);
            assert_eq!(summary.name, NAME);
            assert_eq!(summary.parent, "210200000000");
            assert_eq!(summary.period, month);
            assert!(summary.revision > last_revision, "{month}: {summary:?}");
            assert!(summary.issued_at_ms >= last_issued, "{month}: {summary:?}");
            assert_eq!(summary.local, summary.total, "no children yet");
            assert!(summary.children.is_empty());
            last_revision = summary.revision;
            last_issued = summary.issued_at_ms;
        }
        // The revisions are exactly 1, 2, 3, ... and the latest is what
        // Query reports, under the same digest.
        let numbers: Vec<u64> = envelopes
            .iter()
            .map(|e| {
                statement::peek_unverified::<pb::Summary>(e)
                    .expect("summary")
                    .revision
            })
            .collect();
        assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
        let row = c.row(month).await;
        let latest = envelopes.last().expect("a revision");
        assert_eq!(row.months[0].revision, last_revision);
        assert_eq!(row.months[0].digest, Digest::of(&latest.payload).to_hex());
        let signed: pb::Summary = statement::peek_unverified(latest).expect("summary");
        assert_eq!(signed.total, row.months[0].total);
    }
    assert_eq!(c.revisions("2026-01").await.len(), 3);

    // And nothing else verifies: another key, a changed byte, another type.
    let env = c.revisions("2026-01").await.remove(0);
    let (other, _) = SigningKey::generate().expect("key");
    assert!(matches!(
        envelope::verify(&env, SUMMARY_TYPE, &other.public_key()),
        Err(EnvelopeError::NoSignature(_))
    ));
    let mut tampered = env.clone();
    let last = tampered.payload.len() - 1;
    tampered.payload[last] ^= 1;
    assert!(matches!(
        envelope::verify(&tampered, SUMMARY_TYPE, &key),
        Err(EnvelopeError::BadSignature(_))
    ));
    assert!(envelope::verify(&env, "application/vnd.tallytree.receipt.v1+protobuf", &key).is_err());
    node.stop().await;
}

/// Revisions of this node's `month` summary, decoded.
async fn revision_numbers(c: &mut Clients, month: &str) -> Vec<u64> {
    c.revisions(month)
        .await
        .iter()
        .map(|e| {
            statement::peek_unverified::<pb::Summary>(e)
                .expect("summary")
                .revision
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_import_yields_one_new_revision() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();
    c.record_cases(open_cases("FIRST", 1, "2026-06-01")).await;
    c.wait_signed("2026-06").await;
    assert_eq!(revision_numbers(&mut c, "2026-06").await, [1]);

    let mut rows = import_rows(2, open_cases("BULK", 3000, "2026-06-15"));
    let mut chunks = Vec::new();
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(500));
        chunks.push(chunk(std::mem::replace(&mut rows, rest)));
    }
    assert_eq!(chunks.len(), 6);
    let out = c.import(chunks).await.expect("import");
    assert_eq!(out.accepted, 3000);

    let row = c
        .wait_row("2026-06", |r| common::registered(r) == 3001)
        .await;
    assert_eq!(row.months[0].revision, 2);
    assert_eq!(revision_numbers(&mut c, "2026-06").await, [1, 2]);
    for env in c.revisions("2026-06").await {
        verify_as_auditor(&env, &unit.public_key());
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_small_calls_is_debounced_into_one_revision() {
    // The quiet spell is far longer than the gap between two calls, so the
    // burst settles into one revision however slow the machine is.
    let unit = Unit::with(|c| {
        c.signer = SignerConfig {
            debounce_ms: 2_000,
            max_delay_ms: 60_000,
        }
    });
    let node = unit.start().await;
    let mut c = node.clients();
    for i in 0..25 {
        c.record_cases(open_cases(&format!("BURST{i}"), 40, "2026-07-07"))
            .await;
    }
    let row = c
        .wait_row("2026-07", |r| common::registered(r) == 1000)
        .await;
    assert_eq!(row.months[0].revision, 1);
    assert_eq!(revision_numbers(&mut c, "2026-07").await, [1]);
    node.stop().await;
}
