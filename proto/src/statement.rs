//! Signed statements: which protobuf message each payload type carries, and
//! the typed way to seal and open them.

use prost::Message;

use crate::{
    envelope::{self, EnvelopeError, SignedEnvelope},
    keys::{PublicKey, SigningKey},
    pb,
};

/// A protobuf message that travels signed in an envelope.
pub trait Statement: Message + Default {
    /// The DSSE payload type.
    const PAYLOAD_TYPE: &'static str;
    /// A short name for messages.
    const NAME: &'static str;

    /// The region the statement is about (the reporting, enrolled, revoked
    /// or acknowledged unit).
    fn region_of(&self) -> &str;
}

impl Statement for pb::Summary {
    const PAYLOAD_TYPE: &'static str = "application/vnd.tallytree.summary.v1+protobuf";
    const NAME: &'static str = "summary";

    fn region_of(&self) -> &str {
        &self.region
    }
}

impl Statement for pb::Enrolment {
    const PAYLOAD_TYPE: &'static str = "application/vnd.tallytree.enrolment.v1+protobuf";
    const NAME: &'static str = "enrolment";

    fn region_of(&self) -> &str {
        &self.region
    }
}

impl Statement for pb::Revocation {
    const PAYLOAD_TYPE: &'static str = "application/vnd.tallytree.revocation.v1+protobuf";
    const NAME: &'static str = "revocation";

    fn region_of(&self) -> &str {
        &self.region
    }
}

impl Statement for pb::Receipt {
    const PAYLOAD_TYPE: &'static str = "application/vnd.tallytree.receipt.v1+protobuf";
    const NAME: &'static str = "receipt";

    fn region_of(&self) -> &str {
        &self.region
    }
}

impl Statement for pb::Root {
    const PAYLOAD_TYPE: &'static str = "application/vnd.tallytree.root.v1+protobuf";
    const NAME: &'static str = "root";

    fn region_of(&self) -> &str {
        &self.region
    }
}

impl Statement for pb::KeySuccession {
    const PAYLOAD_TYPE: &'static str = "application/vnd.tallytree.key-succession.v1+protobuf";
    const NAME: &'static str = "key succession";

    fn region_of(&self) -> &str {
        &self.region
    }
}

/// Encodes and signs a statement.
pub fn seal<S: Statement>(key: &SigningKey, statement: &S) -> SignedEnvelope {
    SignedEnvelope::new(envelope::sign(
        key,
        S::PAYLOAD_TYPE,
        statement.encode_to_vec(),
    ))
}

/// Verifies the envelope against `key`, then decodes the payload: the way
/// to read a statement received from anyone.
pub fn open<S: Statement>(env: &pb::Envelope, key: &PublicKey) -> Result<S, EnvelopeError> {
    envelope::verify(env, S::PAYLOAD_TYPE, key)?;
    decode_payload(env)
}

/// Decodes an envelope's payload WITHOUT verifying any signature: what a
/// statement claims, for routing and messages only (which key to verify it
/// with, what to call it in a defect). Nothing read this way may be counted
/// or trusted. The payload type is still checked.
pub fn peek_unverified<S: Statement>(env: &pb::Envelope) -> Result<S, EnvelopeError> {
    check_type::<S>(env)?;
    decode_payload(env)
}

/// Decodes a statement this node read back from its own store: one it
/// signed itself, or verified before storing it. Not for anything received
/// (use [`open`]). The payload type is still checked.
pub fn decode_stored<S: Statement>(env: &pb::Envelope) -> Result<S, EnvelopeError> {
    check_type::<S>(env)?;
    decode_payload(env)
}

fn check_type<S: Statement>(env: &pb::Envelope) -> Result<(), EnvelopeError> {
    if env.payload_type != S::PAYLOAD_TYPE {
        return Err(EnvelopeError::PayloadType {
            expected: S::PAYLOAD_TYPE,
            got: env.payload_type.clone(),
        });
    }
    Ok(())
}

/// The payload as `S`; the caller has checked the payload type.
fn decode_payload<S: Statement>(env: &pb::Envelope) -> Result<S, EnvelopeError> {
    S::decode(env.payload.as_slice()).map_err(|e| EnvelopeError::Decode(S::NAME, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_summaries_open_with_the_signers_key_only() {
        let (key, _) = SigningKey::generate().expect("key");
        let (other, _) = SigningKey::generate().expect("key");
        let summary = pb::Summary {
            region: "210214000000".into(),
            name: "普兰店区".into(),
            period: "2026-03".into(),
            revision: 1,
            ..Default::default()
        };
        let signed = seal(&key, &summary);
        assert_eq!(signed.digest, crate::Digest::of(&signed.envelope.payload));
        let opened: pb::Summary = open(&signed.envelope, &key.public_key()).expect("open");
        assert_eq!(opened, summary);
        assert!(open::<pb::Summary>(&signed.envelope, &other.public_key()).is_err());
        assert!(matches!(
            open::<pb::Receipt>(&signed.envelope, &key.public_key()),
            Err(EnvelopeError::PayloadType { .. })
        ));
    }

    #[test]
    fn peeking_checks_the_payload_type_but_not_the_signature() {
        let (key, _) = SigningKey::generate().expect("key");
        let summary = pb::Summary {
            region: "210214000000".into(),
            ..Default::default()
        };
        let mut env = seal(&key, &summary).envelope;
        env.signatures.clear();
        let peeked: pb::Summary = peek_unverified(&env).expect("decodes unsigned");
        assert_eq!(peeked.region, summary.region);
        assert!(matches!(
            peek_unverified::<pb::Receipt>(&env),
            Err(EnvelopeError::PayloadType { .. })
        ));
        assert!(matches!(
            decode_stored::<pb::Enrolment>(&env),
            Err(EnvelopeError::PayloadType { .. })
        ));
    }
}
