//! Storage: an ordered key-value engine behind the [`Store`] trait, with
//! column families per kind of record. [`RocksStore`] is what nodes run;
//! [`MemStore`] exists for unit tests. Both pass the same conformance suite.
//!
//! The typed layout (keys and rows) lives in [`layout`]; the engines only
//! know bytes.

pub mod layout;
mod mem;
mod rocks;

#[cfg(test)]
mod conformance;

pub use mem::MemStore;
pub use rocks::RocksStore;

/// The column families, one per kind of record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cf {
    /// Cases by registration month and id.
    Cases,
    /// Case id to registration month, to find a case by id.
    CaseIds,
    /// Tasks by deadline month and id.
    Tasks,
    /// Task id to deadline month.
    TaskIds,
    /// Directly entered figures by month and category.
    Direct,
    /// Signed summaries by region, month and revision (own and, at parents, children's).
    Summaries,
    /// Months whose tally changed and wait for a new signed revision.
    Dirty,
    /// Enrolments this node signed or received from its subtree, by region and serial.
    Enrolments,
    /// Revocations this node signed or received from its subtree, by region and key id.
    Revocations,
    /// Receipts this node's parent signed for its summaries, by month and revision.
    Receipts,
    /// Revisions waiting to be pushed to the parent, by month (the latest only).
    Outbox,
    /// Payload digests of statements the parent acknowledged holding.
    Forwarded,
    /// Conflicting summaries kept as evidence of equivocation.
    Evidence,
    /// Single values: this node's installed enrolments, its parent's key.
    Meta,
    /// Rows of bulk imports in progress, by import id, until they commit.
    Staging,
}

impl Cf {
    /// Every column family.
    pub const ALL: [Cf; 15] = [
        Cf::Cases,
        Cf::CaseIds,
        Cf::Tasks,
        Cf::TaskIds,
        Cf::Direct,
        Cf::Summaries,
        Cf::Dirty,
        Cf::Enrolments,
        Cf::Revocations,
        Cf::Receipts,
        Cf::Outbox,
        Cf::Forwarded,
        Cf::Evidence,
        Cf::Meta,
        Cf::Staging,
    ];

    /// The RocksDB column family name.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Cases => "cases",
            Cf::CaseIds => "case_ids",
            Cf::Tasks => "tasks",
            Cf::TaskIds => "task_ids",
            Cf::Direct => "direct",
            Cf::Summaries => "summaries",
            Cf::Dirty => "dirty",
            Cf::Enrolments => "enrolments",
            Cf::Revocations => "revocations",
            Cf::Receipts => "receipts",
            Cf::Outbox => "outbox",
            Cf::Forwarded => "forwarded",
            Cf::Evidence => "evidence",
            Cf::Meta => "meta",
            Cf::Staging => "staging",
        }
    }
}

/// A storage failure. Nodes treat it as fatal for the request (INTERNAL) and
/// keep serving.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed.
    #[error("storage: {0}")]
    Engine(String),
    /// The disk is full: nothing of the write was stored. Writes succeed
    /// again once space is freed.
    #[error("storage full: {0}")]
    Full(String),
    /// A stored row does not decode: the data directory is damaged.
    #[error("storage: corrupt row in {cf}: {reason}")]
    Corrupt {
        /// Column family.
        cf: &'static str,
        /// What failed.
        reason: String,
    },
}

/// One write in a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value`.
    Put(Cf, Vec<u8>, Vec<u8>),
    /// Remove `key`.
    Delete(Cf, Vec<u8>),
    /// Remove every key from the first (included) to the second (excluded);
    /// nothing if the second is not greater.
    DeleteRange(Cf, Vec<u8>, Vec<u8>),
}

/// Writes applied together: all or none, durable once [`Store::write`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// The writes, applied in order.
    pub ops: Vec<Op>,
}

impl Batch {
    /// Adds a put.
    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put(cf, key.into(), value.into()));
    }

    /// Adds a delete.
    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete(cf, key.into()));
    }

    /// Adds the removal of every key in `from..to`.
    pub fn delete_range(&mut self, cf: Cf, from: impl Into<Vec<u8>>, to: impl Into<Vec<u8>>) {
        self.ops.push(Op::DeleteRange(cf, from.into(), to.into()));
    }

    /// Number of writes.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// An ordered key-value store with column families and atomic, durable batches.
pub trait Store: Send + Sync + 'static {
    /// The value at `key`.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// The values at `keys`, in the same order: one call for many lookups,
    /// which RocksDB serves faster than as many [`Store::get`]s.
    fn multi_get(&self, cf: Cf, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|k| self.get(cf, k)).collect()
    }

    /// Calls `visit` on every entry whose key starts with `prefix`, in key
    /// order, until it returns false.
    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;

    /// Like [`Store::scan`], starting at the first key `>= from` (paging
    /// through a prefix: writes must not happen inside `visit`).
    fn scan_from(
        &self,
        cf: Cf,
        prefix: &[u8],
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;

    /// The entry with the greatest key starting with `prefix`.
    fn last(&self, cf: Cf, prefix: &[u8]) -> Result<Option<Entry>, StoreError>;

    /// Whether the last write failed for a full disk (a write that
    /// succeeds clears it).
    fn is_full(&self) -> bool {
        false
    }

    /// Applies `batch` atomically; when it returns, the batch survives a crash
    /// (the write-ahead log is synced). Concurrent callers share syncs.
    fn write(&self, batch: Batch) -> Result<(), StoreError>;

    /// Applies `batch` atomically without waiting for the disk: a crash may
    /// lose it, unless a [`Store::write`] returned after it (the log is
    /// written in order, so syncing it syncs every earlier batch). For
    /// writes that a later synced write makes count: import staging, and
    /// applying an import whose commit is already durable.
    fn write_unsynced(&self, batch: Batch) -> Result<(), StoreError>;
}

/// Calls `visit` on every entry of `cf` whose key starts with `prefix`, in
/// key order, stopping at the first error, which it returns: [`Store::scan`]
/// for visits that decode and may fail.
pub fn try_scan(
    store: &dyn Store,
    cf: Cf,
    prefix: &[u8],
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut failure = None;
    store.scan(cf, prefix, &mut |k, v| match visit(k, v) {
        Ok(()) => true,
        Err(e) => {
            failure = Some(e);
            false
        }
    })?;
    failure.map_or(Ok(()), Err)
}

/// Every entry of `cf` under `prefix`, decoded, in key order; the first
/// entry that does not decode fails the whole read.
pub fn collect<T>(
    store: &dyn Store,
    cf: Cf,
    prefix: &[u8],
    mut decode: impl FnMut(&[u8], &[u8]) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    try_scan(store, cf, prefix, |k, v| {
        out.push(decode(k, v)?);
        Ok(())
    })?;
    Ok(out)
}

/// The smallest key of `cf` starting with `prefix`: the counterpart of
/// [`Store::last`], one seek.
pub fn first_key(store: &dyn Store, cf: Cf, prefix: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    let mut first = None;
    store.scan(cf, prefix, &mut |k, _| {
        first = Some(k.to_vec());
        false
    })?;
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(keys: &[&str]) -> MemStore {
        let store = MemStore::new();
        let mut batch = Batch::default();
        for k in keys {
            batch.put(Cf::Meta, *k, Vec::new());
        }
        store.write(batch).expect("write");
        store
    }

    #[test]
    fn try_scan_stops_at_the_first_error_and_returns_it() {
        let store = store(&["a", "b", "c"]);
        let mut visited = Vec::new();
        let err = try_scan(&store, Cf::Meta, b"", |k, _| {
            visited.push(k.to_vec());
            if k == b"b" {
                return Err(StoreError::Engine("b".into()));
            }
            Ok(())
        })
        .expect_err("fails at b");
        assert_eq!(err.to_string(), "storage: b");
        assert_eq!(visited, [b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn collect_decodes_every_entry_under_the_prefix_in_order() {
        let store = store(&["x/2", "x/1", "y/1"]);
        let keys = collect(&store, Cf::Meta, b"x/", |k, _| Ok(k.to_vec())).expect("read");
        assert_eq!(keys, [b"x/1".to_vec(), b"x/2".to_vec()]);
        assert_eq!(
            first_key(&store, Cf::Meta, b"y").expect("seek"),
            Some(b"y/1".to_vec())
        );
        assert_eq!(first_key(&store, Cf::Staging, b"").expect("seek"), None);
    }
}
