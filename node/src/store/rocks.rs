//! The RocksDB [`Store`]: one column family per kind of record, synced
//! write-ahead log for every batch.

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, DBCompressionType, Direction,
    IteratorMode, Options, WriteOptions,
};

use super::{Batch, Cf, Entry, Op, Store, StoreError};

/// A [`Store`] in a RocksDB directory.
pub struct RocksStore {
    /// The database, with every column family of [`Cf::ALL`] open.
    db: DB,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RocksStore({})", self.db.path().display())
    }
}

fn engine(e: rocksdb::Error) -> StoreError {
    StoreError::Engine(e.to_string())
}

impl RocksStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<RocksStore, StoreError> {
        // A small shared block cache and small memtables keep an idle node's
        // memory low; the workload is modest and mostly sequential.
        let cache = Cache::new_lru_cache(8 << 20);
        let cf_options = || {
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            table.set_bloom_filter(10.0, false);
            let mut o = Options::default();
            o.set_block_based_table_factory(&table);
            o.set_compression_type(DBCompressionType::Lz4);
            o.set_write_buffer_size(8 << 20);
            o
        };
        let mut db_options = cf_options();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_db_write_buffer_size(32 << 20);
        db_options.set_max_background_jobs(2);
        db_options.set_keep_log_file_num(4);
        let cfs = Cf::ALL.map(|cf| ColumnFamilyDescriptor::new(cf.name(), cf_options()));
        let db = DB::open_cf_descriptors(&db_options, path, cfs).map_err(engine)?;
        Ok(RocksStore { db })
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

impl Store for RocksStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get_cf(self.cf(cf)?, key).map_err(engine)
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let iter = self
            .db
            .iterator_cf(self.cf(cf)?, IteratorMode::From(prefix, Direction::Forward));
        for item in iter {
            let (k, v) = item.map_err(engine)?;
            if !k.starts_with(prefix) || !visit(&k, &v) {
                break;
            }
        }
        Ok(())
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
        let mut wb = rocksdb::WriteBatch::default();
        for op in &batch.ops {
            match op {
                Op::Put(cf, k, v) => wb.put_cf(self.cf(*cf)?, k, v),
                Op::Delete(cf, k) => wb.delete_cf(self.cf(*cf)?, k),
            }
        }
        let mut options = WriteOptions::default();
        // Synced: RocksDB groups concurrent synced writers into one WAL sync.
        options.set_sync(true);
        self.db.write_opt(wb, &options).map_err(engine)
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
