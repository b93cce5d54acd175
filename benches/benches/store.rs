//! Storing signed summaries in RocksDB with the write-ahead log synced, as
//! the signer stores its revisions and a parent stores what it acknowledges:
//! one summary per synced write, many per synced batch, concurrent writers
//! sharing syncs, and sign-then-store as the signer does it.
//!
//! The store lives in a temporary directory under `TALLYTREE_BENCH_DIR`
//! (default: the system temp dir); put it on the disk a node would use.
//!
//! `cargo bench -p tallytree-benches --bench store`

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::{BenchmarkId, Criterion, Throughput};
use prost::Message;
use tallytree_benches::street_summary;
use tallytree_node::store::{
    Batch, Cf, RocksStore, Store,
    layout::{self, SummaryRow},
};
use tallytree_proto::{Month, RegionCode, SigningKey, pb, statement};

/// Concurrent writers in the group-commit bench.
const WRITERS: u64 = 4;

fn bench_dir() -> PathBuf {
    std::env::var_os("TALLYTREE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// A store and a stream of fresh summary keys (every write a new revision).
struct Fixture {
    /// Keeps the directory alive while the store is open.
    _dir: tempfile::TempDir,
    store: Arc<RocksStore>,
    region: RegionCode,
    month: Month,
    next_revision: AtomicU64,
    row: Vec<u8>,
}

impl Fixture {
    fn new(key: &SigningKey) -> Fixture {
        let dir = tempfile::tempdir_in(bench_dir()).expect("tempdir");
        let store = Arc::new(RocksStore::open(dir.path()).expect("open store"));
        let summary = street_summary();
        let row = SummaryRow {
            envelope: Some(statement::seal(key, &summary).envelope),
            received_at_ms: 1_775_000_000_000,
            verified: true,
        };
        Fixture {
            _dir: dir,
            store,
            region: RegionCode::parse(&summary.region).expect("region"),
            month: Month::parse(&summary.period).expect("period"),
            next_revision: AtomicU64::new(1),
            row: row.encode_to_vec(),
        }
    }

    /// A batch of `n` summary rows, each under a new revision.
    fn batch(&self, n: u64) -> Batch {
        let first = self.next_revision.fetch_add(n, Ordering::Relaxed);
        let mut batch = Batch::default();
        for revision in first..first + n {
            batch.put(
                Cf::Summaries,
                layout::summary_key(self.region, self.month, revision),
                self.row.clone(),
            );
        }
        batch
    }
}

fn summaries(c: &mut Criterion) {
    let (key, _) = SigningKey::generate().expect("system random source");
    let fx = Fixture::new(&key);
    let mut group = c.benchmark_group("store_summary");

    group.throughput(Throughput::Elements(1));
    group.bench_function("synced_single", |b| {
        b.iter(|| fx.store.write(fx.batch(1)).expect("write"))
    });

    for n in [10u64, 100] {
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::new("synced_batch", n), &n, |b, &n| {
            b.iter(|| fx.store.write(fx.batch(n)).expect("write"))
        });
    }

    // Writers on their own threads, one summary per synced write each:
    // RocksDB groups them into shared WAL syncs.
    group.throughput(Throughput::Elements(WRITERS));
    group.bench_function(BenchmarkId::new("synced_concurrent", WRITERS), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..WRITERS {
                    s.spawn(|| {
                        for _ in 0..iters {
                            fx.store.write(fx.batch(1)).expect("write");
                        }
                    });
                }
            });
            start.elapsed()
        })
    });

    // The signer's step for one month: sign the summary, store the row
    // with its dirty mark cleared, synced.
    let summary = street_summary();
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign_and_store", |b| {
        b.iter(|| {
            let revision = fx.next_revision.fetch_add(1, Ordering::Relaxed);
            let mut s: pb::Summary = summary.clone();
            s.revision = revision;
            let row = SummaryRow {
                envelope: Some(statement::seal(&key, &s).envelope),
                received_at_ms: 1_775_000_000_000,
                verified: true,
            };
            let mut batch = Batch::default();
            batch.delete(Cf::Dirty, layout::month_key(fx.month));
            batch.put(
                Cf::Summaries,
                layout::summary_key(fx.region, fx.month, revision),
                row.encode_to_vec(),
            );
            fx.store.write(batch).expect("write")
        })
    });
    group.finish();
}

// `criterion_group!` would add an undocumented `pub fn`; this is what it and
// `criterion_main!` expand to.
fn main() {
    // Synced writes are slow and vary with the disk: fewer samples, longer
    // warm-up. Command-line options still override these.
    let mut criterion = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(2))
        .configure_from_args();
    summaries(&mut criterion);
    criterion.final_summary();
}
