//! Enrolment at the parent (enrol, rotate, revoke a child) and at the child
//! (install the enrolment the parent signed).

use tallytree_aggregator::Finding;
use tallytree_proto::{Digest, PublicKey, RegionCode, pb, statement};
use tracing::info;

use super::Federation;
use crate::store::{
    Batch, Cf, StoreError,
    layout::{self, meta},
};

/// Why an enrolment call is refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrolmentError {
    /// A field breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// The statement does not verify.
    #[error(transparent)]
    Finding(#[from] Finding),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(msg: String) -> EnrolmentError {
    EnrolmentError::Invalid(msg)
}

impl Federation {
    fn child_code(&self, region: &str) -> Result<RegionCode, EnrolmentError> {
        let code = RegionCode::parse(region).map_err(|e| invalid(e.to_string()))?;
        if !code.is_direct_child_of(self.identity.region) {
            return Err(invalid(format!(
                "region ({code}): not a direct child of this node ({})",
                self.identity.region
            )));
        }
        Ok(code)
    }

    /// Enrols a child's key (a new key of an enrolled child is a rotation:
    /// the next serial). Blocking.
    pub fn enrol(&self, req: &pb::EnrolRequest) -> Result<pb::Envelope, EnrolmentError> {
        let region = self.child_code(&req.region)?;
        let name = req.name.trim();
        if name.is_empty() {
            return Err(invalid("name: required (the child's Chinese name)".into()));
        }
        let key = PublicKey::from_slice(&req.public_key).map_err(|e| invalid(e.to_string()))?;
        let _writer = self.ledger.lock();
        let store = self.ledger.store();
        let serial = match store.last(Cf::Enrolments, &region.as_u64().to_be_bytes())? {
            Some((k, _)) => k
                .get(8..16)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0)
                .saturating_add(1),
            None => 1,
        };
        let now = self.clock.now_ms();
        let enrolment = pb::Enrolment {
            parent: self.identity.region.to_string(),
            region: region.to_string(),
            name: name.to_owned(),
            public_key: key.0.to_vec(),
            serial,
            valid_from_ms: now,
            issued_at_ms: now,
        };
        let sealed = statement::seal(&self.identity.key(), &enrolment);
        self.trust_mut().admit_enrolment(&sealed.envelope)?;
        let mut batch = Batch::default();
        batch.put(
            Cf::Enrolments,
            layout::enrolment_key(region, serial),
            layout::envelope_bytes(&sealed.envelope),
        );
        // The expected number of children changes this month's summary.
        batch.put(Cf::Dirty, layout::month_key(self.clock.month()), Vec::new());
        self.ledger.write_changes(batch)?;
        info!(child = %region, name, serial, key = %&key.key_id()[..16], "enrolled");
        Ok(sealed.envelope)
    }

    /// Revokes a child's key from `revoked_at_ms` (now when 0). Blocking.
    pub fn revoke(&self, req: &pb::RevokeRequest) -> Result<pb::Envelope, EnrolmentError> {
        let region = self.child_code(&req.region)?;
        let key = PublicKey::from_slice(&req.public_key).map_err(|e| invalid(e.to_string()))?;
        let enrolled = self
            .trust()
            .enrolment(&key.key_id())
            .is_some_and(|e| e.region == region);
        if !enrolled {
            return Err(invalid(format!(
                "public_key: key {} is not enrolled for {region}",
                &key.key_id()[..16]
            )));
        }
        let now = self.clock.now_ms();
        let revocation = pb::Revocation {
            parent: self.identity.region.to_string(),
            region: region.to_string(),
            public_key: key.0.to_vec(),
            revoked_at_ms: if req.revoked_at_ms == 0 {
                now
            } else {
                req.revoked_at_ms
            },
            reason: req.reason.clone(),
        };
        let _writer = self.ledger.lock();
        let sealed = statement::seal(&self.identity.key(), &revocation);
        self.trust_mut().admit_revocation(&sealed.envelope)?;
        let mut batch = Batch::default();
        batch.put(
            Cf::Revocations,
            layout::revocation_key(region, &key),
            layout::envelope_bytes(&sealed.envelope),
        );
        batch.put(Cf::Dirty, layout::month_key(self.clock.month()), Vec::new());
        self.ledger.write_changes(batch)?;
        info!(child = %region, key = %&key.key_id()[..16], "revoked");
        Ok(sealed.envelope)
    }

    /// Installs the enrolment this node's parent signed. The enrolled key
    /// must be this node's key, or a rotated key waiting in `<key>.next`,
    /// which then becomes the signing key. Blocking.
    pub fn install(&self, req: &pb::InstallRequest) -> Result<(), EnrolmentError> {
        let Some(parent) = self.identity.region.parent() else {
            return Err(invalid(format!(
                "{}: the top of the tree has no parent to be enrolled by",
                self.identity.region
            )));
        };
        let parent_key = PublicKey::from_slice(&req.parent_public_key)
            .map_err(|e| invalid(format!("parent_{e}")))?;
        let env = req
            .enrolment
            .as_ref()
            .ok_or_else(|| invalid("enrolment: required".into()))?;
        let e: pb::Enrolment = statement::open(env, &parent_key).map_err(|err| {
            invalid(format!(
                "enrolment: {err} (is parent_public_key the parent's key?)"
            ))
        })?;
        if e.parent != parent.to_string() || e.region != self.identity.region.to_string() {
            return Err(invalid(format!(
                "enrolment: binds {} under {}, but this node is {} under {parent}",
                e.region, e.parent, self.identity.region
            )));
        }
        let key = PublicKey::from_slice(&e.public_key).map_err(|err| invalid(err.to_string()))?;
        if key != self.identity.public_key() {
            let next = self.identity.next_key_file();
            let matches_next = next
                .as_deref()
                .and_then(|p| tallytree_proto::SigningKey::load(p).ok())
                .is_some_and(|k| k.public_key() == key);
            if !matches_next {
                return Err(invalid(format!(
                    "enrolment: enrols key {}, which is neither this node's key {} nor a rotated key waiting in {}",
                    &key.key_id()[..16],
                    &self.identity.public_key().key_id()[..16],
                    next.map(|p| p.display().to_string()).unwrap_or_default()
                )));
            }
            let old = self.identity.public_key();
            self.identity
                .rotate()
                .map_err(|err| invalid(format!("rotating the key: {err}")))?;
            self.trust_mut().add_anchor(self.identity.region, old);
            info!(key = %&key.key_id()[..16], "rotated to the newly enrolled key");
        }
        self.trust_mut().add_anchor(self.identity.region, key);
        let _writer = self.ledger.lock();
        let mut batch = Batch::default();
        let mut own_key = meta::OWN_ENROLMENT.to_vec();
        own_key.extend_from_slice(&e.serial.to_be_bytes());
        batch.put(Cf::Meta, own_key, layout::envelope_bytes(env));
        batch.put(Cf::Meta, meta::PARENT_KEY, parent_key.0.to_vec());
        self.ledger.store().write(batch)?;
        info!(parent = %parent, serial = e.serial, digest = %Digest::of(&env.payload).short(), "enrolment installed");
        self.wake_pusher();
        Ok(())
    }

    /// The enrolments and revocations this node signed for its children.
    pub fn list(&self) -> Result<pb::ListEnrolmentsResponse, StoreError> {
        let store = self.ledger.store();
        let own = |env: &pb::Envelope, parent_field: fn(&pb::Envelope) -> Option<String>| {
            parent_field(env).is_some_and(|p| p == self.identity.region.to_string())
        };
        let enrolments = layout::envelopes(store, Cf::Enrolments, b"")?
            .into_iter()
            .filter(|e| {
                own(e, |e| {
                    statement::decode_stored::<pb::Enrolment>(e)
                        .ok()
                        .map(|s| s.parent)
                })
            })
            .collect();
        let revocations = layout::envelopes(store, Cf::Revocations, b"")?
            .into_iter()
            .filter(|e| {
                own(e, |e| {
                    statement::decode_stored::<pb::Revocation>(e)
                        .ok()
                        .map(|s| s.parent)
                })
            })
            .collect();
        Ok(pb::ListEnrolmentsResponse {
            enrolments,
            revocations,
        })
    }
}
