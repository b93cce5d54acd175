//! The node's ledger: its store, the lock that makes check-then-write
//! sequences atomic, and the signal that wakes the signer after a change.

use std::sync::{
    Arc, RwLock, RwLockReadGuard, RwLockWriteGuard,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::Notify;

use crate::store::{Batch, Store, StoreError};

/// The store with its writer discipline.
pub struct Ledger {
    /// Where everything is kept.
    store: Arc<dyn Store>,
    /// Held exclusively by whoever reads state, checks it and writes based
    /// on it (intake, signer), so that no two such sequences interleave; held
    /// shared by parent-side submissions, which only add child summaries and
    /// mark months, so that they run (and share syncs) concurrently.
    writer: RwLock<()>,
    /// Wakes the signer after records changed.
    changed: Notify,
    /// Bumped after every write of records (cases, tasks), under the
    /// writer lock: a bulk import checks its rows against the store while
    /// it streams, without the lock, and checks them again at commit only
    /// if this moved meanwhile.
    records_generation: AtomicU64,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ledger")
    }
}

impl Ledger {
    /// A ledger over `store`.
    pub fn new(store: Arc<dyn Store>) -> Ledger {
        Ledger {
            store,
            writer: RwLock::new(()),
            changed: Notify::new(),
            records_generation: AtomicU64::new(0),
        }
    }

    /// The store, for reads.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The store, shared (for work on another thread).
    pub fn store_arc(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Takes the writer lock exclusively.
    pub fn lock(&self) -> RwLockWriteGuard<'_, ()> {
        // The guarded value is (), so a panic elsewhere cannot leave it
        // inconsistent; a poisoned lock is safe to take.
        self.writer.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the writer lock shared.
    pub fn shared(&self) -> RwLockReadGuard<'_, ()> {
        self.writer.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes a batch that changes records, then wakes the signer.
    pub fn write_changes(&self, batch: Batch) -> Result<(), StoreError> {
        self.store.write(batch)?;
        self.changed.notify_one();
        Ok(())
    }

    /// The generation of the stored records. Read it before reading records
    /// without the writer lock: if it is the same later, under the lock,
    /// nothing read has changed since.
    pub fn records_generation(&self) -> u64 {
        self.records_generation.load(Ordering::SeqCst)
    }

    /// Marks that records were written. Call under the writer lock, after
    /// the writes (before, a reader could take the new generation and still
    /// read the old rows).
    pub fn records_written(&self) {
        self.records_generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Resolves after the next change (or at once if one is pending).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Wakes the signer without a change (e.g. at a date change).
    pub fn wake(&self) {
        self.changed.notify_one();
    }
}
