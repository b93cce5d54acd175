//! One suite, run against every [`Store`]: ordering, prefixes, atomic
//! batches, batched lookups, range deletes, unsynced writes, and (for
//! RocksDB) durability across reopen. Each property is one small function,
//! run over every engine by [`every_engine`].

use super::{Batch, Cf, MemStore, RocksStore, Store};

fn put(store: &dyn Store, cf: Cf, k: &[u8], v: &[u8]) {
    let mut b = Batch::default();
    b.put(cf, k, v);
    store.write(b).expect("write");
}

fn keys(store: &dyn Store, cf: Cf, prefix: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    store
        .scan(cf, prefix, &mut |k, _| {
            out.push(k.to_vec());
            true
        })
        .expect("scan");
    out
}

fn suite(store: &dyn Store) {
    // Get, overwrite, delete.
    assert_eq!(store.get(Cf::Cases, b"k").expect("get"), None);
    put(store, Cf::Cases, b"k", b"1");
    put(store, Cf::Cases, b"k", b"2");
    assert_eq!(
        store.get(Cf::Cases, b"k").expect("get"),
        Some(b"2".to_vec())
    );
    let mut b = Batch::default();
    b.delete(Cf::Cases, b"k");
    store.write(b).expect("delete");
    assert_eq!(store.get(Cf::Cases, b"k").expect("get"), None);

    // Column families are separate namespaces.
    put(store, Cf::Tasks, b"k", b"t");
    assert_eq!(store.get(Cf::Cases, b"k").expect("get"), None);

    // Prefix scans are ordered, bounded, and stop when asked.
    for k in [&b"a\x02"[..], b"a\x01", b"a\xff\xff", b"b\x00", b"\x00"] {
        put(store, Cf::Summaries, k, k);
    }
    assert_eq!(
        keys(store, Cf::Summaries, b"a"),
        vec![b"a\x01".to_vec(), b"a\x02".to_vec(), b"a\xff\xff".to_vec()]
    );
    let mut first = Vec::new();
    store
        .scan(Cf::Summaries, b"", &mut |k, _| {
            first.push(k.to_vec());
            false
        })
        .expect("scan");
    assert_eq!(first, vec![b"\x00".to_vec()]);

    // Last with a prefix, including prefixes ending in 0xff and empty ones.
    let last = |p: &[u8]| store.last(Cf::Summaries, p).expect("last").map(|(k, _)| k);
    assert_eq!(last(b"a"), Some(b"a\xff\xff".to_vec()));
    assert_eq!(last(b"a\xff"), Some(b"a\xff\xff".to_vec()));
    assert_eq!(last(b"b"), Some(b"b\x00".to_vec()));
    assert_eq!(last(b"c"), None);
    assert_eq!(last(b""), Some(b"b\x00".to_vec()));
    assert_eq!(store.last(Cf::Dirty, b"").expect("last"), None);

    // A batch applies in order, across column families.
    let mut b = Batch::default();
    b.put(Cf::Direct, b"x", b"1");
    b.put(Cf::Dirty, b"x", b"1");
    b.delete(Cf::Direct, b"x");
    b.put(Cf::Direct, b"y", b"2");
    store.write(b).expect("batch");
    assert_eq!(store.get(Cf::Direct, b"x").expect("get"), None);
    assert_eq!(
        store.get(Cf::Direct, b"y").expect("get"),
        Some(b"2".to_vec())
    );
    assert_eq!(
        store.get(Cf::Dirty, b"x").expect("get"),
        Some(b"1".to_vec())
    );
}

/// Many lookups in one call answer like as many gets, in order, with
/// missing keys and repeated keys.
fn multi_get_answers_like_get(store: &dyn Store) {
    put(store, Cf::CaseIds, b"a", b"1");
    put(store, Cf::CaseIds, b"c", b"3");
    put(store, Cf::Cases, b"b", b"other family");
    let keys: [&[u8]; 5] = [b"c", b"b", b"a", b"", b"c"];
    let got = store.multi_get(Cf::CaseIds, &keys).expect("multi_get");
    let one_by_one: Vec<_> = keys
        .iter()
        .map(|k| store.get(Cf::CaseIds, k).expect("get"))
        .collect();
    assert_eq!(got, one_by_one);
    assert_eq!(
        got,
        [
            Some(b"3".to_vec()),
            None,
            Some(b"1".to_vec()),
            None,
            Some(b"3".to_vec())
        ]
    );
    assert!(store.multi_get(Cf::CaseIds, &[]).expect("none").is_empty());
}

/// Paging through a prefix: start at a key, stay inside the prefix.
fn scan_from_starts_at_a_key_inside_the_prefix(store: &dyn Store) {
    for k in [&b"p\x01"[..], b"p\x02", b"p\x03", b"q\x00", b"o\xff"] {
        put(store, Cf::Staging, k, k);
    }
    let from = |prefix: &[u8], start: &[u8]| {
        let mut out = Vec::new();
        store
            .scan_from(Cf::Staging, prefix, start, &mut |k, _| {
                out.push(k.to_vec());
                true
            })
            .expect("scan_from");
        out
    };
    assert_eq!(from(b"p", b"p\x02"), [b"p\x02".to_vec(), b"p\x03".to_vec()]);
    // Between keys, before the prefix, past its end.
    assert_eq!(
        from(b"p", b"p\x01\x00"),
        [b"p\x02".to_vec(), b"p\x03".to_vec()]
    );
    assert_eq!(from(b"p", b"a").len(), 3);
    assert!(from(b"p", b"p\x04").is_empty());
    assert!(from(b"p", b"z").is_empty());
    assert_eq!(from(b"", b"p\x03"), [b"p\x03".to_vec(), b"q\x00".to_vec()]);
}

/// A range delete removes exactly `from..to`, in order with the batch's
/// other writes, and nothing in other column families.
fn delete_range_removes_exactly_the_range(store: &dyn Store) {
    for k in [&b"r\x00"[..], b"r\x01", b"r\x01\x05", b"r\x02", b"s"] {
        put(store, Cf::Staging, k, b"v");
        put(store, Cf::Outbox, k, b"v");
    }
    let mut b = Batch::default();
    b.put(Cf::Staging, b"r\x01\x07", b"put before the delete");
    b.delete_range(Cf::Staging, b"r\x01", b"r\x02");
    b.put(Cf::Staging, b"r\x01\x09", b"put after the delete");
    // An empty or reversed range removes nothing.
    b.delete_range(Cf::Staging, b"s", b"s");
    b.delete_range(Cf::Staging, b"s", b"r");
    store.write(b).expect("write");
    assert_eq!(
        keys(store, Cf::Staging, b""),
        [
            b"r\x00".to_vec(),
            b"r\x01\x09".to_vec(),
            b"r\x02".to_vec(),
            b"s".to_vec()
        ]
    );
    assert_eq!(keys(store, Cf::Outbox, b"").len(), 5);
}

/// An unsynced batch is applied atomically and read back at once.
fn unsynced_writes_apply_like_writes(store: &dyn Store) {
    let mut b = Batch::default();
    b.put(Cf::Staging, b"u1", b"1");
    b.put(Cf::Dirty, b"u2", b"2");
    b.delete(Cf::Staging, b"u1");
    b.put(Cf::Staging, b"u3", b"3");
    store.write_unsynced(b).expect("write_unsynced");
    assert_eq!(store.get(Cf::Staging, b"u1").expect("get"), None);
    assert_eq!(
        store.get(Cf::Staging, b"u3").expect("get"),
        Some(b"3".to_vec())
    );
    assert_eq!(
        store.get(Cf::Dirty, b"u2").expect("get"),
        Some(b"2".to_vec())
    );
}

/// Runs every property on a fresh store from `open`.
fn every_engine(open: &dyn Fn() -> Box<dyn Store>) {
    suite(open().as_ref());
    multi_get_answers_like_get(open().as_ref());
    scan_from_starts_at_a_key_inside_the_prefix(open().as_ref());
    delete_range_removes_exactly_the_range(open().as_ref());
    unsynced_writes_apply_like_writes(open().as_ref());
}

#[test]
fn mem_store_conforms() {
    every_engine(&|| Box::new(MemStore::new()));
}

#[test]
fn rocks_store_conforms() {
    let dirs = std::cell::RefCell::new(Vec::new());
    every_engine(&|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RocksStore::open(dir.path()).expect("open");
        dirs.borrow_mut().push(dir);
        Box::new(store)
    });
}

#[test]
fn rocks_store_keeps_writes_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = RocksStore::open(dir.path()).expect("open");
        suite(&store);
        // An unsynced write followed by a synced one: both are durable.
        let mut b = Batch::default();
        b.put(Cf::Staging, b"unsynced", b"1");
        store.write_unsynced(b).expect("unsynced");
        put(&store, Cf::Meta, b"synced", b"2");
    }
    let store = RocksStore::open(dir.path()).expect("reopen");
    assert_eq!(
        store.get(Cf::Direct, b"y").expect("get"),
        Some(b"2".to_vec())
    );
    assert_eq!(keys(&store, Cf::Summaries, b"a").len(), 3);
    assert_eq!(
        store.get(Cf::Staging, b"unsynced").expect("get"),
        Some(b"1".to_vec())
    );
}
