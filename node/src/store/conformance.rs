//! One suite, run against every [`Store`]: ordering, prefixes, atomic
//! batches, and (for RocksDB) durability across reopen.

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

#[test]
fn mem_store_conforms() {
    suite(&MemStore::new());
}

#[test]
fn rocks_store_conforms_and_keeps_writes_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = RocksStore::open(dir.path()).expect("open");
        suite(&store);
    }
    let store = RocksStore::open(dir.path()).expect("reopen");
    assert_eq!(
        store.get(Cf::Direct, b"y").expect("get"),
        Some(b"2".to_vec())
    );
    assert_eq!(keys(&store, Cf::Summaries, b"a").len(), 3);
}
