//! An in-memory [`Store`] for unit tests. Not durable; never used by a node.

use std::{collections::BTreeMap, sync::RwLock};

use super::{Batch, Cf, Entry, Op, Store, StoreError};

/// One ordered map per column family.
type Maps = BTreeMap<Cf, BTreeMap<Vec<u8>, Vec<u8>>>;

/// A [`Store`] in ordered maps.
#[derive(Default, Debug)]
pub struct MemStore {
    /// One ordered map per column family.
    maps: RwLock<Maps>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        // A panic while holding the lock leaves the maps consistent (writes are
        // applied to a copy first), so a poisoned lock is still safe to read.
        self.maps.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read().get(&cf).and_then(|m| m.get(key).cloned()))
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let maps = self.read();
        let Some(map) = maps.get(&cf) else {
            return Ok(());
        };
        for (k, v) in map.range(prefix.to_vec()..) {
            if !k.starts_with(prefix) || !visit(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn scan_from(
        &self,
        cf: Cf,
        prefix: &[u8],
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let maps = self.read();
        let Some(map) = maps.get(&cf) else {
            return Ok(());
        };
        let start = prefix.max(from).to_vec();
        for (k, v) in map.range(start..) {
            if !k.starts_with(prefix) || !visit(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn last(&self, cf: Cf, prefix: &[u8]) -> Result<Option<Entry>, StoreError> {
        let maps = self.read();
        let Some(map) = maps.get(&cf) else {
            return Ok(None);
        };
        Ok(map
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .last()
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let mut maps = self.maps.write().unwrap_or_else(|e| e.into_inner());
        // Apply to a copy so that the batch is all or nothing even if a panic
        // interrupts it.
        let mut next = maps.clone();
        for op in batch.ops {
            match op {
                Op::Put(cf, k, v) => {
                    next.entry(cf).or_default().insert(k, v);
                }
                Op::Delete(cf, k) => {
                    next.entry(cf).or_default().remove(&k);
                }
                Op::DeleteRange(cf, from, to) => {
                    if from < to {
                        next.entry(cf)
                            .or_default()
                            .retain(|k, _| *k < from || *k >= to);
                    }
                }
            }
        }
        *maps = next;
        Ok(())
    }

    fn write_unsynced(&self, batch: Batch) -> Result<(), StoreError> {
        self.write(batch)
    }
}
