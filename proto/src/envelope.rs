//! The DSSE envelope (secure-systems-lab/dsse, v1.0).
//!
//! Signatures cover `PAE(payloadType, payload)`; receivers verify the exact
//! payload bytes before decoding anything, never re-encode a received
//! statement, and keep the original bytes.

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use serde::{Deserialize, Serialize};

use crate::{
    digest::Digest,
    keys::{PublicKey, SigningKey},
    pb,
};

/// Why an envelope was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The envelope carries another kind of statement.
    #[error("payload_type: expected {expected}, got {got:?}")]
    PayloadType {
        /// What the receiver expects.
        expected: &'static str,
        /// What the envelope says.
        got: String,
    },
    /// No signature by the expected key.
    #[error("signatures: no signature by key {0}")]
    NoSignature(String),
    /// A signature by the expected key that does not verify.
    #[error("signatures: signature by key {0} does not verify")]
    BadSignature(String),
    /// The verified payload does not decode as the statement.
    #[error("payload: not a valid {0} statement ({1})")]
    Decode(&'static str, String),
    /// The JSON form is malformed.
    #[error("envelope JSON: {0}")]
    Json(String),
}

/// `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`,
/// LEN being the ASCII decimal byte length.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + payload_type.len() + payload.len());
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

/// Signs `payload` as `payload_type` with `key`.
pub fn sign(key: &SigningKey, payload_type: &str, payload: Vec<u8>) -> pb::Envelope {
    let sig = key.sign(&pae(payload_type, &payload));
    pb::Envelope {
        payload,
        payload_type: payload_type.to_owned(),
        signatures: vec![pb::Signature {
            sig,
            keyid: key.public_key().key_id(),
        }],
    }
}

/// Signs `payload` as `payload_type` with each of `keys`, one signature
/// each (a root of trust, signed by a threshold of keys).
pub fn sign_all(keys: &[&SigningKey], payload_type: &str, payload: Vec<u8>) -> pb::Envelope {
    let message = pae(payload_type, &payload);
    pb::Envelope {
        signatures: keys
            .iter()
            .map(|k| pb::Signature {
                sig: k.sign(&message),
                keyid: k.public_key().key_id(),
            })
            .collect(),
        payload,
        payload_type: payload_type.to_owned(),
    }
}

/// Checks that `envelope` carries `payload_type` and is signed by `key`.
/// Signatures by other keys are ignored; the one by `key` must verify.
pub fn verify(
    envelope: &pb::Envelope,
    payload_type: &'static str,
    key: &PublicKey,
) -> Result<(), EnvelopeError> {
    if envelope.payload_type != payload_type {
        return Err(EnvelopeError::PayloadType {
            expected: payload_type,
            got: envelope.payload_type.clone(),
        });
    }
    // Key ids compared in binary: no hex string per verification.
    let id = Digest::of(&key.0).0;
    let names_key = |keyid: &str| {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(keyid, &mut bytes).is_ok_and(|()| bytes == id)
    };
    let candidates = envelope
        .signatures
        .iter()
        .filter(|s| s.keyid.is_empty() || names_key(&s.keyid));
    let message = pae(&envelope.payload_type, &envelope.payload);
    let mut seen = false;
    for s in candidates {
        seen = true;
        if key.verify(&message, &s.sig) {
            return Ok(());
        }
    }
    if seen {
        Err(EnvelopeError::BadSignature(key.key_id()))
    } else {
        Err(EnvelopeError::NoSignature(key.key_id()))
    }
}

/// An envelope with its payload digest, kept together so the digest is
/// computed once.
#[derive(Clone, Debug, PartialEq)]
pub struct SignedEnvelope {
    /// The envelope exactly as received or signed.
    pub envelope: pb::Envelope,
    /// SHA-256 of the payload.
    pub digest: Digest,
}

impl SignedEnvelope {
    /// Wraps an envelope, computing its payload digest.
    pub fn new(envelope: pb::Envelope) -> SignedEnvelope {
        let digest = Digest::of(&envelope.payload);
        SignedEnvelope { envelope, digest }
    }
}

/// The standard DSSE JSON form.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DsseJson {
    /// Base64 (standard alphabet, padded) of the payload bytes.
    pub payload: String,
    /// The payload type.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The signatures.
    pub signatures: Vec<DsseJsonSignature>,
}

/// One signature in the DSSE JSON form.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DsseJsonSignature {
    /// Key id hint.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    /// Base64 of the signature.
    pub sig: String,
}

impl DsseJson {
    /// The JSON form of `envelope`.
    pub fn from_envelope(envelope: &pb::Envelope) -> DsseJson {
        DsseJson {
            payload: B64.encode(&envelope.payload),
            payload_type: envelope.payload_type.clone(),
            signatures: envelope
                .signatures
                .iter()
                .map(|s| DsseJsonSignature {
                    keyid: s.keyid.clone(),
                    sig: B64.encode(&s.sig),
                })
                .collect(),
        }
    }

    /// Back to the protobuf envelope.
    pub fn to_envelope(&self) -> Result<pb::Envelope, EnvelopeError> {
        let payload = B64
            .decode(&self.payload)
            .map_err(|e| EnvelopeError::Json(format!("payload: not base64 ({e})")))?;
        let signatures = self
            .signatures
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(pb::Signature {
                    keyid: s.keyid.clone(),
                    sig: B64.decode(&s.sig).map_err(|e| {
                        EnvelopeError::Json(format!("signatures[{i}].sig: not base64 ({e})"))
                    })?,
                })
            })
            .collect::<Result<_, EnvelopeError>>()?;
        Ok(pb::Envelope {
            payload,
            payload_type: self.payload_type.clone(),
            signatures,
        })
    }

    /// Parses the JSON text of one envelope.
    pub fn parse(text: &str) -> Result<DsseJson, EnvelopeError> {
        serde_json::from_str(text).map_err(|e| EnvelopeError::Json(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_protocol_definition_byte_for_byte() {
        // The worked example of the DSSE protocol document (protocol.md).
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        // Lengths are byte lengths in ASCII decimal, even for multi-byte text,
        // and an empty payload still has its separators.
        assert_eq!(
            pae("t", "辽宁".as_bytes()),
            "DSSEv1 1 t 6 辽宁".as_bytes().to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn signed_envelopes_verify_and_refuse_tampering() {
        let (key, _) = SigningKey::generate().expect("key");
        let (other, _) = SigningKey::generate().expect("key");
        let env = sign(&key, "application/x-test", b"figures".to_vec());
        verify(&env, "application/x-test", &key.public_key()).expect("verifies");

        let mut tampered = env.clone();
        tampered.payload[0] ^= 1;
        assert!(matches!(
            verify(&tampered, "application/x-test", &key.public_key()),
            Err(EnvelopeError::BadSignature(_))
        ));
        assert!(matches!(
            verify(&env, "application/x-other", &key.public_key()),
            Err(EnvelopeError::PayloadType { .. })
        ));
        assert!(matches!(
            verify(&env, "application/x-test", &other.public_key()),
            Err(EnvelopeError::NoSignature(_))
        ));
        // A signature over the payload alone (not the PAE) does not verify.
        let mut raw = env.clone();
        raw.signatures[0].sig = key.sign(&env.payload);
        assert!(verify(&raw, "application/x-test", &key.public_key()).is_err());
    }

    #[test]
    fn json_form_is_standard_dsse_and_round_trips() {
        let (key, _) = SigningKey::generate().expect("key");
        let env = sign(&key, "application/x-test", b"hello world".to_vec());
        let json = serde_json::to_value(DsseJson::from_envelope(&env)).expect("json");
        assert_eq!(json["payload"], "aGVsbG8gd29ybGQ=");
        assert_eq!(json["payloadType"], "application/x-test");
        assert_eq!(json["signatures"][0]["keyid"], key.public_key().key_id());
        let back = DsseJson::parse(&json.to_string())
            .expect("parse")
            .to_envelope()
            .expect("env");
        assert_eq!(back, env);
        assert!(DsseJson::parse("{\"payload\":1}").is_err());
    }
}
