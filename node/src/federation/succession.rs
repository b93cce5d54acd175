//! Rotating this node's own signing key: the waiting key (`<key>.next`)
//! replaces the current one when an enrolment (below the top) or a root (at
//! the top) names it. The node then signs a key succession with both keys
//! and keeps it; it hands its successions to its children with every
//! receipt, and a child follows them from the parent key its enrolment gave
//! it to the key that signed the receipt ([`follow`]).

use tallytree_proto::{Digest, PublicKey, SigningKey, pb, statement};

use super::enrolment::EnrolmentError;
use crate::{
    context::NodeContext,
    store::{Batch, Cf, Store, StoreError, layout},
};

/// Prefix of this node's key successions in the meta column family
/// (followed by the new key's id bytes); value: the envelope.
const PREFIX: &[u8] = b"succession/";

/// A rotation about to be stored.
#[derive(Debug)]
pub struct Rotation {
    /// The key taking over.
    pub new_key: PublicKey,
    /// The succession, signed by the old and the new key.
    pub succession: pb::Envelope,
}

impl Rotation {
    /// The rotation to `named` (the key an installed statement names), or
    /// `None` when it is the node's key already. `what` names the statement
    /// in the refusal when `named` is neither the node's key nor the one
    /// waiting. Blocking (reads the waiting key).
    pub fn to(
        ctx: &NodeContext,
        named: PublicKey,
        what: &str,
    ) -> Result<Option<Rotation>, EnrolmentError> {
        let old = ctx.identity.key();
        if named == old.public_key() {
            return Ok(None);
        }
        let next_file = ctx.identity.next_key_file();
        let next = next_file
            .as_deref()
            .and_then(|p| SigningKey::load(p).ok())
            .filter(|k| k.public_key() == named);
        let Some(next) = next else {
            return Err(EnrolmentError::Invalid(format!(
                "{what}: names key {}, which is neither this node's key {} nor a rotated key waiting in {}",
                &named.key_id()[..16],
                &old.public_key().key_id()[..16],
                next_file
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )));
        };
        let s = pb::KeySuccession {
            region: ctx.identity.region.to_string(),
            old_key: old.public_key().0.to_vec(),
            new_key: named.0.to_vec(),
            issued_at_ms: ctx.clock.now_ms(),
        };
        let payload = prost::Message::encode_to_vec(&s);
        let succession = tallytree_proto::envelope::sign_all(
            &[&old, &next],
            <pb::KeySuccession as statement::Statement>::PAYLOAD_TYPE,
            payload,
        );
        Ok(Some(Rotation {
            new_key: named,
            succession,
        }))
    }

    /// Adds the succession to the batch that stores what names the key.
    pub fn store_in(&self, batch: &mut Batch) {
        let mut key = PREFIX.to_vec();
        key.extend_from_slice(&Digest::of(&self.new_key.0).0);
        batch.put(Cf::Meta, key, layout::envelope_bytes(&self.succession));
    }
}

/// Every key succession of this node.
pub fn successions(store: &dyn Store) -> Result<Vec<pb::Envelope>, StoreError> {
    layout::envelopes(store, Cf::Meta, PREFIX)
}

/// Follows `successions` from `known` (the parent key a child holds) to
/// `wanted` (the key id that signed a receipt): each step a succession of
/// `region` signed by the key it leaves and the key it names. The key
/// reached, or why not.
pub fn follow(
    known: PublicKey,
    wanted: &str,
    region: &str,
    successions: &[pb::Envelope],
) -> Result<PublicKey, String> {
    let mut current = known;
    // Each step moves to a key not seen before: the walk ends.
    let mut seen = vec![current];
    while current.key_id() != wanted {
        let next = successions.iter().find_map(|env| {
            let s: pb::KeySuccession = statement::open(env, &current).ok()?;
            let new = PublicKey::from_slice(&s.new_key).ok()?;
            let valid = s.region == region
                && s.old_key == current.0
                && tallytree_proto::envelope::verify(
                    env,
                    <pb::KeySuccession as statement::Statement>::PAYLOAD_TYPE,
                    &new,
                )
                .is_ok();
            (valid && !seen.contains(&new)).then_some(new)
        });
        match next {
            Some(k) => {
                seen.push(k);
                current = k;
            }
            None => {
                return Err(format!(
                    "no key succession of {region} leads from key {} to key {}",
                    &known.key_id()[..16],
                    wanted.get(..16).unwrap_or(wanted)
                ));
            }
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn succession(
        region: &str,
        old: &SigningKey,
        new: &SigningKey,
        signers: &[&SigningKey],
    ) -> pb::Envelope {
        let s = pb::KeySuccession {
            region: region.into(),
            old_key: old.public_key().0.to_vec(),
            new_key: new.public_key().0.to_vec(),
            issued_at_ms: 1,
        };
        tallytree_proto::envelope::sign_all(
            signers,
            <pb::KeySuccession as statement::Statement>::PAYLOAD_TYPE,
            prost::Message::encode_to_vec(&s),
        )
    }

    #[test]
    fn a_child_follows_its_parent_s_successions_and_nothing_else() {
        let key = || SigningKey::generate().expect("key").0;
        let (k1, k2, k3, stranger) = (key(), key(), key(), key());
        let region = "210214000000";
        let chain = [
            succession(region, &k2, &k3, &[&k2, &k3]),
            succession(region, &k1, &k2, &[&k1, &k2]),
        ];
        let reached =
            follow(k1.public_key(), &k3.public_key().key_id(), region, &chain).expect("two steps");
        assert_eq!(reached, k3.public_key());
        // A succession the old key did not sign, or of another unit, leads nowhere.
        let forged = [succession(region, &k1, &stranger, &[&stranger])];
        assert!(
            follow(
                k1.public_key(),
                &stranger.public_key().key_id(),
                region,
                &forged
            )
            .is_err()
        );
        let elsewhere = [succession("210213000000", &k1, &k2, &[&k1, &k2])];
        assert!(
            follow(
                k1.public_key(),
                &k2.public_key().key_id(),
                region,
                &elsewhere
            )
            .is_err()
        );
        // The new key must have signed too.
        let unproven = [succession(region, &k1, &k2, &[&k1])];
        assert!(
            follow(
                k1.public_key(),
                &k2.public_key().key_id(),
                region,
                &unproven
            )
            .is_err()
        );
    }
}
