//! Ids repeated across an import's chunks: a chunk's own repeats are found
//! in a map of that chunk (`rows::Seen`); a repeat of an earlier chunk's id
//! is a 4-byte fingerprint already seen ([`Fingerprints`]), confirmed by
//! looking the id up in staging ([`EarlierChunks`]), whose row gives the
//! first line.

use std::{
    collections::HashSet,
    hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState},
};

use crate::store::{
    Cf, Store, StoreError,
    layout::{self, StagedKind},
};

/// Repeated ids across an import's chunks: the ids already staged, as
/// fingerprints (a repeat is confirmed against staging, so a fingerprint
/// collision costs a lookup, never a false refusal).
pub(in crate::intake) struct EarlierChunks<'a> {
    /// Where the earlier chunks' rows are staged.
    store: &'a dyn Store,
    /// Staging key prefix of this kind of row.
    prefix: [u8; 9],
    /// Fingerprints of the ids staged.
    fingerprints: &'a mut Fingerprints,
}

impl<'a> EarlierChunks<'a> {
    /// The earlier chunks of `import`'s rows of `kind`.
    pub(super) fn new(
        store: &'a dyn Store,
        import: u64,
        kind: StagedKind,
        fingerprints: &'a mut Fingerprints,
    ) -> EarlierChunks<'a> {
        EarlierChunks {
            store,
            prefix: layout::staging_kind_prefix(import, kind),
            fingerprints,
        }
    }

    /// The line `id` was staged with by an earlier chunk, if any; notes
    /// `id` as seen.
    pub(in crate::intake) fn first_line(&mut self, id: &str) -> Result<Option<u64>, StoreError> {
        if self.fingerprints.insert(id) {
            return Ok(None);
        }
        let mut key = self.prefix.to_vec();
        key.extend_from_slice(id.as_bytes());
        self.store
            .get(Cf::Staging, &key)?
            .map(|v| layout::staged_row(&v).map(|r| r.line))
            .transpose()
    }
}

/// 4-byte fingerprints of ids under a per-import random key: about 5 bytes
/// of memory per row (2,000,000 rows: 20 MB), against some 50 for the ids.
/// With 2,000,000 ids, a few hundred pairs collide and cost a lookup each.
#[derive(Default)]
pub(super) struct Fingerprints {
    /// Keyed hash of the ids (random per import, so no chosen ids collide).
    key: RandomState,
    /// The fingerprints.
    set: HashSet<u32, BuildHasherDefault<Spread>>,
}

impl std::fmt::Debug for Fingerprints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprints({})", self.set.len())
    }
}

impl Fingerprints {
    /// Adds the fingerprint of `id`; false if it was there (maybe `id`).
    fn insert(&mut self, id: &str) -> bool {
        // Truncation intended: the fingerprint is the low 32 bits.
        self.set.insert(self.key.hash_one(id) as u32)
    }
}

/// Hashes a fingerprint (already uniformly random) by spreading it over 64
/// bits, as the table wants its high bits random too.
#[derive(Default)]
struct Spread(u64);

impl Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    #[test]
    fn a_fingerprint_collision_is_not_a_duplicate() {
        let store = MemStore::new();
        let mut fingerprints = Fingerprints::default();
        // Pretend an earlier chunk staged an id with the fingerprint of "Y".
        assert!(fingerprints.insert("Y"));
        let mut earlier = EarlierChunks::new(&store, 7, StagedKind::Case, &mut fingerprints);
        assert_eq!(earlier.first_line("Y").expect("lookup"), None);
        assert_eq!(earlier.first_line("Z").expect("lookup"), None);
    }
}
