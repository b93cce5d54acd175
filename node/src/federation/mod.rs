//! The federation: enrolment of children, verified submissions from them
//! (the parent side), and the push of this node's revisions to its parent
//! (the child side). All checks are the aggregator's, shared with auditors.
//!
//! - [`enrolment`]: enrol, rotate and revoke children; install this node's
//!   own enrolment.
//! - [`submit`]: Federation.Submit at the parent: verify, store durably, receipt.
//! - `revisions`: the revision rules of one child and month, under its stripe.
//! - [`pusher`]: the outbox pusher with timeout, retry and backoff.

pub mod enrolment;
pub mod pusher;
mod revisions;
pub mod submit;

use std::sync::{Arc, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tallytree_aggregator::Trust;
use tallytree_proto::{PublicKey, pb, statement};
use tokio::sync::Notify;
use tracing::warn;

use crate::{
    clock::Clock,
    identity::Identity,
    ledger::Ledger,
    store::{
        Cf, StoreError,
        layout::{self, meta},
    },
};

/// What the federation parts of a node share.
#[derive(Debug)]
pub struct Federation {
    /// The store.
    pub ledger: Arc<Ledger>,
    /// This node.
    pub identity: Arc<Identity>,
    /// Its clock.
    pub clock: Clock,
    /// Which keys speak for which regions of the subtree.
    trust: RwLock<Trust>,
    /// Serialises the revision rules of one child and month.
    stripes: revisions::Stripes,
    /// Wakes the pusher (new revision, enrolment installed).
    pusher_wake: Notify,
}

impl Federation {
    /// Loads the trust state from the store.
    pub fn open(
        ledger: Arc<Ledger>,
        identity: Arc<Identity>,
        clock: Clock,
    ) -> Result<Federation, StoreError> {
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
        for finding in trust.admit_all(&enrolments, &revocations) {
            warn!(%finding, "stored statement no longer verifies");
        }
        Ok(Federation {
            ledger,
            identity,
            clock,
            trust: RwLock::new(trust),
            stripes: revisions::Stripes::new(),
            pusher_wake: Notify::new(),
        })
    }

    /// The trust state, for reading.
    ///
    /// Locks are taken in one order: a submission's stripe, then the
    /// ledger's writer lock, then the trust, innermost. Holding the trust,
    /// never wait for another lock: a writer waiting for the trust blocks
    /// new readers, so a reader that waits on a stripe or the ledger while
    /// holding it can close a cycle (stripe holder → ledger → signer →
    /// trust → waiting writer → that reader).
    pub fn trust(&self) -> RwLockReadGuard<'_, Trust> {
        self.trust.read().unwrap_or_else(|e| e.into_inner())
    }

    fn trust_mut(&self) -> RwLockWriteGuard<'_, Trust> {
        self.trust.write().unwrap_or_else(|e| e.into_inner())
    }

    fn stripe(
        &self,
        region: tallytree_proto::RegionCode,
        month: tallytree_proto::Month,
    ) -> MutexGuard<'_, revisions::Stripe> {
        self.stripes.lock(region, month)
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
