//! Admitting enrolments and revocations in two steps: check them against the
//! trust without changing it ([`Trust::check_all`]), then, once the caller
//! has made them durable, trust them ([`Trust::apply`]). A node never trusts
//! in memory what its store does not hold: a failed write, or one refused
//! statement among several, leaves the trust as it was.

use std::collections::HashMap;

use tallytree_proto::{Digest, pb, statement::Statement};

use crate::{
    defect::Defect,
    trust::{EnrolmentView, RevocationView, Trust, TrustedKey},
};

/// Statements checked against a [`Trust`], not yet trusted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Admission {
    /// Enrolments, parents before their children.
    pub enrolments: Vec<EnrolmentView>,
    /// Revocations.
    pub revocations: Vec<RevocationView>,
}

impl Admission {
    /// True when there is nothing to admit.
    pub fn is_empty(&self) -> bool {
        self.enrolments.is_empty() && self.revocations.is_empty()
    }
}

impl Trust {
    /// Checks enrolments (in any order: a child's enrolment may be signed
    /// by a key enrolled in the same set) and revocations against this
    /// trust, without changing it. All or nothing: the first statement that
    /// cannot be verified refuses the set.
    pub fn check_all(
        &self,
        enrolments: &[pb::Envelope],
        revocations: &[pb::Envelope],
    ) -> Result<Admission, Defect> {
        // Keys enrolled by the set itself, by key id.
        let mut staged: HashMap<Digest, TrustedKey> = HashMap::new();
        let mut admission = Admission::default();
        let mut pending: Vec<&pb::Envelope> = enrolments.iter().collect();
        // Each round checks at least one more level; the tree has five.
        while !pending.is_empty() {
            let before = pending.len();
            let mut waiting = Vec::new();
            let mut first_finding = None;
            for env in pending {
                let checked = self
                    .signer_within::<pb::Enrolment>(env, "enrolment", &staged)
                    .and_then(|signer| signer.open_enrolment(env));
                match checked {
                    Ok(view) => {
                        staged.insert(
                            Digest::of(&view.key.0),
                            TrustedKey {
                                region: view.region,
                                key: view.key,
                                valid_from_ms: view.valid_from_ms,
                                revoked_at_ms: None,
                            },
                        );
                        admission.enrolments.push(view);
                    }
                    Err(f) => {
                        waiting.push(env);
                        first_finding.get_or_insert(f);
                    }
                }
            }
            if waiting.len() == before
                && let Some(f) = first_finding
            {
                return Err(f);
            }
            pending = waiting;
        }
        for env in revocations {
            let view = self
                .signer_within::<pb::Revocation>(env, "revocation", &staged)?
                .open_revocation(env)?;
            admission.revocations.push(view);
        }
        Ok(admission)
    }

    /// Trusts what [`Trust::check_all`] checked (call once it is durable).
    pub fn apply(&mut self, admission: Admission) {
        for view in admission.enrolments {
            self.insert_enrolment(view);
        }
        for view in admission.revocations {
            self.insert_revocation(view);
        }
    }

    /// The signer of `env` among the trusted keys or the keys `staged`
    /// enrols.
    fn signer_within<S: Statement>(
        &self,
        env: &pb::Envelope,
        what: &'static str,
        staged: &HashMap<Digest, TrustedKey>,
    ) -> Result<TrustedKey, Defect> {
        self.signer_of::<S>(env, what).or_else(|defect| {
            env.signatures
                .first()
                .and_then(|s| Digest::from_hex(&s.keyid))
                .and_then(|id| staged.get(&id).copied())
                .ok_or(defect)
        })
    }
}

#[cfg(test)]
mod tests {
    use tallytree_proto::{PublicKey, RegionCode, SigningKey, statement};

    use super::*;

    fn key() -> SigningKey {
        SigningKey::generate().expect("key").0
    }

    fn code(s: &str) -> RegionCode {
        RegionCode::parse(s).expect("code")
    }

    fn enrol(parent: &SigningKey, parent_code: &str, child: &str, key: PublicKey) -> pb::Envelope {
        let e = pb::Enrolment {
            parent: parent_code.into(),
            region: child.into(),
            name: format!("unit {child}"),
            public_key: key.0.to_vec(),
            serial: 1,
            valid_from_ms: 1,
            issued_at_ms: 1,
            tls_spki_sha256: Vec::new(),
        };
        statement::seal(parent, &e).envelope
    }

    fn revoke(parent: &SigningKey, parent_code: &str, child: &str, key: PublicKey) -> pb::Envelope {
        let r = pb::Revocation {
            parent: parent_code.into(),
            region: child.into(),
            public_key: key.0.to_vec(),
            revoked_at_ms: 5,
            reason: "key lost".into(),
        };
        statement::seal(parent, &r).envelope
    }

    const DISTRICT: &str = "210214000000";
    const STREET: &str = "210214001000";
    const VILLAGE: &str = "210214001001";

    #[test]
    fn a_chain_given_children_first_is_checked_without_changing_the_trust() {
        let (district, street, village) = (key(), key(), key());
        let trust = Trust::with_anchor(code(DISTRICT), district.public_key());
        let enrolments = [
            enrol(&street, STREET, VILLAGE, village.public_key()),
            enrol(&district, DISTRICT, STREET, street.public_key()),
        ];
        let revocations = [revoke(&street, STREET, VILLAGE, village.public_key())];
        let admission = trust.check_all(&enrolments, &revocations).expect("checks");
        assert_eq!(admission.enrolments.len(), 2);
        assert_eq!(admission.enrolments[0].region, code(STREET));
        assert_eq!(admission.revocations.len(), 1);
        assert_eq!(trust.region_of_key(&street.public_key()), None);
        assert!(trust.revocation(&village.public_key().key_id()).is_none());

        let mut trust = trust;
        trust.apply(admission);
        assert_eq!(
            trust.region_of_key(&village.public_key()),
            Some(code(VILLAGE))
        );
        assert!(trust.revocation(&village.public_key().key_id()).is_some());
    }

    #[test]
    fn one_refused_statement_refuses_the_set() {
        let (district, street, stranger) = (key(), key(), key());
        let trust = Trust::with_anchor(code(DISTRICT), district.public_key());
        // The village's enrolment is signed by a key nobody enrolled.
        let enrolments = [
            enrol(&district, DISTRICT, STREET, street.public_key()),
            enrol(&stranger, STREET, VILLAGE, key().public_key()),
        ];
        let defect = trust.check_all(&enrolments, &[]).expect_err("refused");
        assert!(matches!(defect, Defect::UnknownKey { .. }), "{defect}");
        // A revocation by an unknown key refuses the set too.
        let revocations = [revoke(&stranger, STREET, VILLAGE, key().public_key())];
        assert!(trust.check_all(&enrolments[..1], &revocations).is_err());
        assert_eq!(trust.region_of_key(&street.public_key()), None);
    }
}
