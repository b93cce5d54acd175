//! The RocksDB [`Store`]: one column family per kind of record, synced
//! write-ahead log for every batch.

use std::{
    path::Path,
    sync::{Condvar, Mutex},
};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBCompressionType, Direction,
    IteratorMode, Options, ReadOptions, WriteOptions,
};

use super::{Batch, Cf, Entry, Op, Store, StoreError};

/// A [`Store`] in a RocksDB directory.
pub struct RocksStore {
    /// The database, with every column family of [`Cf::ALL`] open.
    db: DB,
    /// Batches waiting for the next synced write (group commit).
    group: Mutex<Group>,
    /// The last write failed for a full disk (cleared by the next that
    /// succeeds).
    full: std::sync::atomic::AtomicBool,
    /// Wakes writers when their group's write is done.
    done: Condvar,
}

/// Group commit: the first writer to find no write in progress becomes the
/// leader, takes every batch queued meanwhile, writes them as one batch with
/// one WAL sync, and wakes their writers. Under concurrency (a parent taking
/// many submissions at once) one sync serves them all.
#[derive(Default)]
struct Group {
    /// Batches waiting, with their ticket.
    queue: Vec<(u64, Batch)>,
    /// Next ticket to hand out.
    next_ticket: u64,
    /// A leader is writing.
    writing: bool,
    /// Outcome of each finished ticket not yet collected by its writer.
    finished: std::collections::HashMap<u64, Result<(), String>>,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RocksStore({})", self.db.path().display())
    }
}

fn engine(e: rocksdb::Error) -> StoreError {
    classify(e.to_string())
}

/// An engine failure by its text: a full disk is told apart (RocksDB says
/// it in the message of its IO error).
fn classify(text: String) -> StoreError {
    if text.contains("No space left on device") {
        StoreError::Full(text)
    } else {
        StoreError::Engine(text)
    }
}

impl RocksStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<RocksStore, StoreError> {
        // A small shared block cache and small memtables keep an idle node's
        // memory low; the workload is modest and mostly sequential.
        let cache = Cache::new_lru_cache(8 << 20);
        let cf_options = |cf: Option<Cf>| {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            let mut o = Options::default();
            o.set_write_buffer_size(8 << 20);
            if cf == Some(Cf::Staging) {
                // Import rows live for the length of an import and are
                // read back by one scan: compressing them, or building
                // bloom filters that the scan never consults, is work and
                // memory for nothing.
                o.set_compression_type(DBCompressionType::None);
            } else {
                table.set_bloom_filter(10.0, false);
                o.set_compression_type(DBCompressionType::Lz4);
            }
            o.set_block_based_table_factory(&table);
            o
        };
        let mut db_options = cf_options(None);
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_db_write_buffer_size(32 << 20);
        db_options.set_max_background_jobs(2);
        db_options.set_keep_log_file_num(4);
        // The default column family holds nothing, but RocksDB sizes the
        // space it reserves before resuming after a full disk by the
        // largest write buffer: with its own defaults (64 MB) a node on a
        // small volume would not resume writes until restarted.
        let cfs = std::iter::once(ColumnFamilyDescriptor::new(
            rocksdb::DEFAULT_COLUMN_FAMILY_NAME,
            cf_options(None),
        ))
        .chain(Cf::ALL.map(|cf| ColumnFamilyDescriptor::new(cf.name(), cf_options(Some(cf)))));
        let db = DB::open_cf_descriptors(&db_options, path, cfs).map_err(engine)?;
        Ok(RocksStore {
            db,
            group: Mutex::new(Group::default()),
            full: std::sync::atomic::AtomicBool::new(false),
            done: Condvar::new(),
        })
    }

    /// Remembers whether a write failed for a full disk.
    fn note(&self, result: Result<(), StoreError>) -> Result<(), StoreError> {
        let full = matches!(result, Err(StoreError::Full(_)));
        self.full.store(full, std::sync::atomic::Ordering::Relaxed);
        result
    }

    fn cf(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| StoreError::Engine(format!("column family {} missing", cf.name())))
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None`
/// when no such key exists (prefix empty or all 0xff).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl RocksStore {
    fn lock_group(&self) -> std::sync::MutexGuard<'_, Group> {
        // The group's state is consistent between statements; a panic in
        // another writer cannot leave it half-updated.
        self.group.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes batches as one RocksDB write batch, with a synced WAL when
    /// `sync`.
    fn write_batches<'a>(
        &self,
        batches: impl Iterator<Item = &'a Batch>,
        sync: bool,
    ) -> Result<(), String> {
        let mut wb = rocksdb::WriteBatch::default();
        for batch in batches {
            for op in &batch.ops {
                let cf = |c: Cf| self.cf(c).map_err(|e| e.to_string());
                match op {
                    Op::Put(c, k, v) => wb.put_cf(cf(*c)?, k, v),
                    Op::Delete(c, k) => wb.delete_cf(cf(*c)?, k),
                    // RocksDB refuses a reversed range; the trait's is empty.
                    Op::DeleteRange(c, from, to) if from < to => {
                        wb.delete_range_cf(cf(*c)?, from, to)
                    }
                    Op::DeleteRange(..) => {}
                }
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        self.db.write_opt(wb, &options).map_err(|e| e.to_string())
    }
}

impl Store for RocksStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(cf)?, key).map_err(engine)
    }

    fn multi_get(&self, cf: Cf, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.db
            .batched_multi_get_cf(self.cf(cf)?, keys.iter().copied(), false)
            .into_iter()
            .map(|r| r.map(|v| v.map(|v| v.to_vec())).map_err(engine))
            .collect()
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.scan_from(cf, prefix, prefix, visit)
    }

    fn scan_from(
        &self,
        cf: Cf,
        prefix: &[u8],
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        // A raw iterator lends keys and values instead of copying each into
        // a fresh allocation; the upper bound stops it at the prefix's end
        // without reading what lies beyond (range tombstones included).
        let mut options = ReadOptions::default();
        if let Some(end) = prefix_end(prefix) {
            options.set_iterate_upper_bound(end);
        }
        let mut iter = self.db.raw_iterator_cf_opt(self.cf(cf)?, options);
        iter.seek(prefix.max(from));
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            if !k.starts_with(prefix) || !visit(k, v) {
                break;
            }
            iter.next();
        }
        iter.status().map_err(engine)
    }

    fn last(&self, cf: Cf, prefix: &[u8]) -> Result<Option<Entry>, StoreError> {
        let handle = self.cf(cf)?;
        let mut iter = match prefix_end(prefix) {
            Some(end) => self
                .db
                .iterator_cf(handle, IteratorMode::From(&end, Direction::Reverse)),
            None => self.db.iterator_cf(handle, IteratorMode::End),
        };
        // Reverse iteration from `end` may start at `end` itself.
        for item in iter.by_ref() {
            let (k, v) = item.map_err(engine)?;
            if k.starts_with(prefix) {
                return Ok(Some((k.to_vec(), v.to_vec())));
            }
            if k.as_ref() < prefix {
                return Ok(None);
            }
        }
        Ok(None)
    }

    fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let mut group = self.lock_group();
        let ticket = group.next_ticket;
        group.next_ticket += 1;
        group.queue.push((ticket, batch));
        loop {
            if let Some(result) = group.finished.remove(&ticket) {
                return result.map_err(classify);
            }
            if !group.writing {
                break;
            }
            group = self.done.wait(group).unwrap_or_else(|e| e.into_inner());
        }
        // Leader: write everything queued (this batch included) at once.
        group.writing = true;
        let taken = std::mem::take(&mut group.queue);
        drop(group);
        let result = self.write_batches(taken.iter().map(|(_, b)| b), true);
        let mut group = self.lock_group();
        group.writing = false;
        for (t, _) in &taken {
            group.finished.insert(*t, result.clone());
        }
        let mine = group.finished.remove(&ticket).unwrap_or(Ok(()));
        drop(group);
        self.done.notify_all();
        self.note(mine.map_err(classify))
    }

    fn write_unsynced(&self, batch: Batch) -> Result<(), StoreError> {
        let result = self
            .write_batches(std::iter::once(&batch), false)
            .map_err(classify);
        self.note(result)
    }

    fn is_full(&self) -> bool {
        self.full.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }
}
