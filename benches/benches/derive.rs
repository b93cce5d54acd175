//! Tally derivation: the local tallies of every month from 10,000 and
//! 100,000 case records (plus one task per ten cases), in memory and as the
//! signer does it, reading the rows back from RocksDB. Target: 100,000 cases
//! in under 50 ms.
//!
//! `cargo bench -p tallytree-benches --bench derive`

use std::hint::black_box;

use chrono::NaiveDate;
use criterion::{BenchmarkId, Criterion, Throughput};
use prost::Message;
use tallytree_aggregator::{Tally, derive};
use tallytree_benches::{Window, case_records, task_records};
use tallytree_node::{
    signer::tally,
    store::{
        Batch, Cf, RocksStore, Store,
        layout::{self, CaseRow, TaskRow},
    },
};
use tallytree_proto::Month;

const SIZES: [usize; 2] = [10_000, 100_000];

fn today(window: &Window) -> NaiveDate {
    window.last
}

fn in_memory(c: &mut Criterion) {
    let window = Window::fixed();
    let mut group = c.benchmark_group("derive");
    for n in SIZES {
        let cases = case_records(n, &window, 1);
        let tasks = task_records(n / 10, &window, 2);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("by_month", n), &n, |b, _| {
            b.iter(|| derive::derive_by_month(black_box(&cases), black_box(&tasks), today(&window)))
        });
        // The inner loop alone: one tally, no month lookup.
        group.bench_with_input(BenchmarkId::new("count_case", n), &n, |b, _| {
            b.iter(|| {
                let mut tally = Tally::default();
                for case in black_box(&cases) {
                    tally.count_case(case);
                }
                tally
            })
        });
    }
    group.finish();
}

/// Fills a RocksDB store with `n` cases and `n / 10` tasks as intake stores
/// them; returns the months they fall in.
fn filled_store(store: &RocksStore, n: usize, window: &Window) -> Vec<Month> {
    let cases = case_records(n, window, 1);
    let tasks = task_records(n / 10, window, 2);
    let mut batch = Batch::default();
    let mut months = std::collections::BTreeSet::new();
    for (i, case) in cases.iter().enumerate() {
        let id = format!("C{i:07}");
        months.insert(case.month());
        batch.put(
            Cf::Cases,
            layout::record_key(case.month(), &id),
            CaseRow::from_record(case).encode_to_vec(),
        );
        batch.put(
            Cf::CaseIds,
            id.into_bytes(),
            layout::month_key(case.month()),
        );
    }
    for (i, task) in tasks.iter().enumerate() {
        let id = format!("T{i:07}");
        batch.put(
            Cf::Tasks,
            layout::record_key(task.month(), &id),
            TaskRow::from_record(task, "排查走访").encode_to_vec(),
        );
    }
    store.write(batch).expect("fill the store");
    months.into_iter().collect()
}

fn from_rocksdb(c: &mut Criterion) {
    let window = Window::fixed();
    let mut group = c.benchmark_group("derive_from_rocksdb");
    group.sample_size(20);
    for n in SIZES {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RocksStore::open(dir.path()).expect("open store");
        let months = filled_store(&store, n, &window);
        group.throughput(Throughput::Elements(n as u64));
        // What the signer runs for each changed month: scan, decode, count.
        group.bench_with_input(BenchmarkId::new("local_tally_all_months", n), &n, |b, _| {
            b.iter(|| {
                months
                    .iter()
                    .map(|m| tally::local_tally(&store, *m, today(&window)).expect("tally"))
                    .collect::<Vec<_>>()
            })
        });
    }
    group.finish();
}

// `criterion_group!` would add an undocumented `pub fn`; this is what it and
// `criterion_main!` expand to.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    in_memory(&mut criterion);
    from_rocksdb(&mut criterion);
    criterion.final_summary();
}
