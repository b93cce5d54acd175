//! The node's context: what every part of a running node shares (the
//! ledger, the unit's identity and clock, and the trust state of its
//! subtree). Services (intake, submissions, enrolments, query, evidence, the
//! signer and the pusher) are separate types that hold it.

use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use tallytree_aggregator::{Admission, SummaryView, Trust, findings::Params};
use tallytree_proto::{Digest, PublicKey, pb, statement};
use tokio::sync::Notify;
use tracing::warn;

use crate::{
    clock::Clock,
    findings::FindingsIndex,
    identity::Identity,
    ledger::Ledger,
    store::{
        Batch, Cf, Op, StoreError,
        layout::{self, meta},
    },
};

/// A change of the trust, checked against it, with the write that makes it
/// durable.
#[derive(Debug, Default)]
pub(crate) struct TrustChange {
    /// Enrolments and revocations, verified, not yet trusted.
    pub(crate) admission: Admission,
    /// Keys of this node to trust (an installed enrolment's, and the key
    /// it replaces, which signed statements still held).
    pub(crate) own_keys: Vec<PublicKey>,
    /// The write that stores them.
    pub(crate) batch: Batch,
}

/// What the parts of a running node share.
#[derive(Debug)]
pub struct NodeContext {
    /// The store with its writer lock.
    pub ledger: Arc<Ledger>,
    /// This unit: code, name, signing key.
    pub identity: Arc<Identity>,
    /// Now, today and the current month in the unit's time zone.
    pub clock: Clock,
    /// Which keys speak for which regions of the subtree. Changed only
    /// through [`NodeContext::admit`], after the write that makes the
    /// change durable.
    trust: RwLock<Trust>,
    /// Serialises changes of the trust, so that what one change checked
    /// against is still the trust when it is applied.
    admission: Mutex<()>,
    /// Wakes the pusher (new revision, enrolment installed).
    pusher_wake: Notify,
    /// The findings over the summaries this node counts.
    pub findings: FindingsIndex,
}

impl NodeContext {
    /// Opens the context over `ledger`, loading the trust state from the
    /// store; the findings use the thresholds `findings`.
    pub fn open(
        ledger: Arc<Ledger>,
        identity: Arc<Identity>,
        clock: Clock,
        findings: Params,
    ) -> Result<NodeContext, StoreError> {
        let store = ledger.store();
        let mut trust = Trust::with_anchor(identity.region, identity.public_key());
        // Earlier keys of this node signed enrolments still held.
        for env in layout::envelopes(store, Cf::Meta, meta::OWN_ENROLMENT)? {
            if let Ok(e) = statement::decode_stored::<pb::Enrolment>(&env)
                && let Ok(key) = PublicKey::from_slice(&e.public_key)
            {
                trust.add_anchor(identity.region, key);
            }
        }
        let enrolments = layout::envelopes(store, Cf::Enrolments, b"")?;
        let revocations = layout::envelopes(store, Cf::Revocations, b"")?;
        for defect in trust.admit_all(&enrolments, &revocations) {
            warn!(%defect, "stored statement no longer verifies");
        }
        Ok(NodeContext {
            ledger,
            identity,
            clock,
            trust: RwLock::new(trust),
            admission: Mutex::new(()),
            pusher_wake: Notify::new(),
            findings: FindingsIndex::new(findings),
        })
    }

    /// The trust state, for reading.
    ///
    /// Locks are taken in one order: a submission's stripe, the ledger's
    /// writer lock, a change of the trust (`NodeContext::admit`), then the
    /// trust, innermost. Holding the trust, never wait for
    /// another lock: a writer waiting for the trust blocks new readers, so
    /// a reader that waits on a stripe or the ledger while holding it can
    /// close a cycle (stripe holder → ledger → signer → trust → waiting
    /// writer → that reader).
    pub fn trust(&self) -> RwLockReadGuard<'_, Trust> {
        self.trust.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the trust durably: `check` looks at the current trust and
    /// returns the change (verified, not yet trusted) with the batch that
    /// stores it; the batch is written and synced, and only then is the
    /// change trusted. A refused check or a failed write leaves the trust
    /// as it was, so trust and store always agree.
    pub(crate) fn admit<E: From<StoreError>>(
        &self,
        check: impl FnOnce(&Trust) -> Result<TrustChange, E>,
    ) -> Result<(), E> {
        // The guarded value is (): a panic elsewhere cannot leave it
        // inconsistent.
        let _change = self.admission.lock().unwrap_or_else(|e| e.into_inner());
        let change = check(&self.trust())?;
        // A change that marks a month (a child enrolled or revoked changes
        // this node's completeness) wakes the signer; one that only stores
        // statements does not.
        let marks_a_month = change
            .batch
            .ops
            .iter()
            .any(|op| matches!(op, Op::Put(Cf::Dirty, ..)));
        self.ledger.store().write(change.batch)?;
        if marks_a_month {
            self.ledger.wake();
        }
        let mut trust = self.trust.write().unwrap_or_else(|e| e.into_inner());
        trust.apply(change.admission);
        for key in change.own_keys {
            trust.add_anchor(self.identity.region, key);
        }
        Ok(())
    }

    /// Signs the receipt of a stored child summary. Ed25519 is
    /// deterministic, so the receipt is signed again byte for byte from the
    /// stored row when it is asked for again (a duplicate submission, an
    /// evidence export): nothing but the summary needs storing.
    pub fn issue_receipt(
        &self,
        view: &SummaryView,
        digest: Digest,
        received_at_ms: i64,
    ) -> pb::Envelope {
        let receipt = pb::Receipt {
            parent: self.identity.region.to_string(),
            region: view.region.to_string(),
            period: view.period.to_string(),
            revision: view.revision,
            digest: digest.0.to_vec(),
            received_at_ms,
        };
        statement::seal(&self.identity.key(), &receipt).envelope
    }

    /// The parent's key, once this node's enrolment is installed.
    pub fn parent_key(&self) -> Result<Option<PublicKey>, StoreError> {
        Ok(self
            .ledger
            .store()
            .get(Cf::Meta, meta::PARENT_KEY)?
            .and_then(|raw| PublicKey::from_slice(&raw).ok()))
    }

    /// Wakes the pusher.
    pub fn wake_pusher(&self) {
        self.pusher_wake.notify_one();
    }

    /// Resolves when the pusher is woken.
    pub async fn pusher_woken(&self) {
        self.pusher_wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    //! Trust and store agree: a failed write or a refused statement leaves
    //! the trust as the store has it, before and after a restart.

    use std::sync::atomic::{AtomicBool, Ordering};

    use tallytree_proto::{RegionCode, SigningKey};

    use super::*;
    use crate::{
        federation::{Enrolments, Submissions, enrolment::EnrolmentError, submit::SubmitError},
        store::{Entry, MemStore, Store},
        tls::{
            material::{Authority, TlsKey},
            peer::Peer,
        },
    };

    const DISTRICT: &str = "210214000000";
    const STREET: &str = "210214001000";
    const VILLAGE: &str = "210214001001";

    /// A store whose writes fail while `failing` is set (a full disk).
    struct FailingStore {
        inner: Arc<MemStore>,
        failing: AtomicBool,
    }

    impl Store for FailingStore {
        fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(cf, key)
        }

        fn scan(
            &self,
            cf: Cf,
            prefix: &[u8],
            visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> Result<(), StoreError> {
            self.inner.scan(cf, prefix, visit)
        }

        fn scan_from(
            &self,
            cf: Cf,
            prefix: &[u8],
            from: &[u8],
            visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
        ) -> Result<(), StoreError> {
            self.inner.scan_from(cf, prefix, from, visit)
        }

        fn last(&self, cf: Cf, prefix: &[u8]) -> Result<Option<Entry>, StoreError> {
            self.inner.last(cf, prefix)
        }

        fn write(&self, batch: Batch) -> Result<(), StoreError> {
            self.check()?;
            self.inner.write(batch)
        }

        fn write_unsynced(&self, batch: Batch) -> Result<(), StoreError> {
            self.check()?;
            self.inner.write_unsynced(batch)
        }
    }

    impl FailingStore {
        fn check(&self) -> Result<(), StoreError> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::Engine("no space left on device".into()));
            }
            Ok(())
        }
    }

    /// The district's node over `inner`, as opened at a start.
    struct District {
        /// The district's key, PKCS#8.
        pkcs8: Vec<u8>,
        inner: Arc<MemStore>,
        store: Arc<FailingStore>,
        ctx: Arc<NodeContext>,
    }

    impl District {
        fn new() -> District {
            let pkcs8 = SigningKey::generate().expect("key").1;
            District::open(pkcs8, Arc::new(MemStore::new()))
        }

        fn open(pkcs8: Vec<u8>, inner: Arc<MemStore>) -> District {
            let store = Arc::new(FailingStore {
                inner: inner.clone(),
                failing: AtomicBool::new(false),
            });
            let identity = Arc::new(Identity::new(
                RegionCode::parse(DISTRICT).expect("code"),
                "普兰店区".into(),
                SigningKey::from_pkcs8(&pkcs8).expect("key"),
                None,
            ));
            let ledger = Arc::new(Ledger::new(store.clone()));
            let ctx = Arc::new(
                NodeContext::open(ledger, identity, Clock::new(8), Params::default())
                    .expect("open"),
            );
            District {
                pkcs8,
                inner,
                store,
                ctx,
            }
        }

        /// The same store opened again, as after a restart.
        fn restart(&self) -> District {
            District::open(self.pkcs8.clone(), self.inner.clone())
        }

        fn fail_writes(&self, failing: bool) {
            self.store.failing.store(failing, Ordering::SeqCst);
        }

        fn trusts(&self, key: &SigningKey) -> bool {
            self.ctx.trust().region_of_key(&key.public_key()).is_some()
        }

        fn stored_enrolments(&self) -> usize {
            layout::envelopes(self.ctx.ledger.store(), Cf::Enrolments, b"")
                .expect("read")
                .len()
        }

        fn enrol(&self, code: &str, key: &SigningKey) -> Result<pb::Envelope, EnrolmentError> {
            let tls = TlsKey::generate().expect("TLS key");
            Enrolments::new(self.ctx.clone(), ca())
                .enrol(&pb::EnrolRequest {
                    region: code.into(),
                    name: "铁西街道".into(),
                    public_key: key.public_key().0.to_vec(),
                    tls_csr: tls
                        .csr_pem(RegionCode::parse(code).expect("code"), "铁西街道")
                        .expect("csr"),
                })
                .map(|enrolled| enrolled.enrolment)
        }
    }

    fn key() -> SigningKey {
        SigningKey::generate().expect("key").0
    }

    fn ca() -> Arc<Authority> {
        let code = RegionCode::parse("210214000000").expect("code");
        Arc::new(Authority::in_memory(code, "普兰店区", 1_767_225_600_000).expect("CA"))
    }

    /// The street's enrolment of a village, forwarded with a submission.
    fn village_enrolment(street: &SigningKey, village: &SigningKey, signer: &str) -> pb::Envelope {
        let e = pb::Enrolment {
            parent: signer.into(),
            region: VILLAGE.into(),
            name: "玉皇庙社区".into(),
            public_key: village.public_key().0.to_vec(),
            serial: 1,
            valid_from_ms: 1,
            issued_at_ms: 1,
            tls_spki_sha256: Vec::new(),
        };
        statement::seal(street, &e).envelope
    }

    #[test]
    fn a_failed_enrolment_write_trusts_nothing_before_or_after_a_restart() {
        let district = District::new();
        let street = key();
        district.fail_writes(true);
        let err = district
            .enrol(STREET, &street)
            .expect_err("the write fails");
        assert!(matches!(err, EnrolmentError::Store(_)), "{err}");
        assert!(!district.trusts(&street), "trusted though not stored");
        assert_eq!(district.stored_enrolments(), 0);
        let district = district.restart();
        assert!(!district.trusts(&street));

        district.enrol(STREET, &street).expect("enrols");
        assert!(district.trusts(&street));
        let district = district.restart();
        assert!(
            district.trusts(&street),
            "stored, so trusted after a restart"
        );
    }

    #[test]
    fn a_failed_revocation_write_leaves_the_key_unrevoked() {
        let district = District::new();
        let street = key();
        district.enrol(STREET, &street).expect("enrols");
        district.fail_writes(true);
        let revoke = pb::RevokeRequest {
            region: STREET.into(),
            public_key: street.public_key().0.to_vec(),
            revoked_at_ms: 0,
            reason: "key lost".into(),
        };
        let enrolments = Enrolments::new(district.ctx.clone(), ca());
        assert!(matches!(
            enrolments.revoke(&revoke),
            Err(EnrolmentError::Store(_))
        ));
        let revoked = |d: &District| {
            d.ctx
                .trust()
                .revocation(&street.public_key().key_id())
                .is_some()
        };
        assert!(!revoked(&district));
        assert!(!revoked(&district.restart()));
        district.fail_writes(false);
        enrolments.revoke(&revoke).expect("revokes");
        assert!(revoked(&district));
        assert!(revoked(&district.restart()));
    }

    /// A submission whose forwarded enrolments are refused or cannot be
    /// stored admits none of them.
    #[test]
    fn forwarded_enrolments_are_trusted_only_all_together_and_once_stored() {
        let district = District::new();
        let (street, village, sibling, stranger) = (key(), key(), key(), key());
        district.enrol(STREET, &street).expect("enrols");
        let submissions = Submissions::new(district.ctx.clone());
        // The statements are admitted (or not) before the summary is read:
        // an empty one will do.
        let summary = Some(pb::Envelope::default());
        let good = village_enrolment(&street, &village, STREET);
        let mut forged = village_enrolment(&stranger, &sibling, STREET);
        forged = {
            let mut e: pb::Enrolment = statement::peek_unverified(&forged).expect("decodes");
            e.region = "210214001002".into();
            statement::seal(&stranger, &e).envelope
        };
        let refused = submissions
            .submit(
                &pb::SubmitRequest {
                    summary: summary.clone(),
                    enrolments: vec![good.clone(), forged],
                    ..Default::default()
                },
                &Peer::Plaintext,
            )
            .expect_err("a forged sibling refuses the request");
        assert!(matches!(refused, SubmitError::Defect(_)), "{refused}");
        assert!(!district.trusts(&village), "the good sibling was trusted");
        assert_eq!(district.stored_enrolments(), 1, "only the street's");
        assert!(!district.restart().trusts(&village));

        district.fail_writes(true);
        let failed = submissions
            .submit(
                &pb::SubmitRequest {
                    summary: summary.clone(),
                    enrolments: vec![good.clone()],
                    ..Default::default()
                },
                &Peer::Plaintext,
            )
            .expect_err("the write fails");
        assert!(matches!(failed, SubmitError::Store(_)), "{failed}");
        assert!(!district.trusts(&village));
        assert!(!district.restart().trusts(&village));

        district.fail_writes(false);
        let unsigned = submissions
            .submit(
                &pb::SubmitRequest {
                    summary,
                    enrolments: vec![good],
                    ..Default::default()
                },
                &Peer::Plaintext,
            )
            .expect_err("the empty summary is refused");
        assert!(matches!(unsigned, SubmitError::Defect(_)), "{unsigned}");
        assert!(district.trusts(&village), "stored and trusted");
        assert!(district.restart().trusts(&village));
    }
}
