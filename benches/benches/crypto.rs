//! Signatures: Ed25519 sign, the raw ring verify that every other figure is
//! read against, and a parent's whole acceptance of a signed summary (DSSE
//! verify, protobuf decode, well-formedness checks).
//!
//! `cargo bench -p tallytree-benches --bench crypto`

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use prost::Message;
use tallytree_aggregator::SummaryView;
use tallytree_benches::street_summary;
use tallytree_proto::{
    SigningKey,
    envelope::pae,
    pb,
    statement::{self, Statement},
};

fn crypto(c: &mut Criterion) {
    let (key, _) = SigningKey::generate().expect("system random source");
    let public = key.public_key();
    let summary = street_summary();
    let payload = summary.encode_to_vec();
    // The exact bytes a summary signature covers.
    let message = pae(pb::Summary::PAYLOAD_TYPE, &payload);
    let sig = key.sign(&message);
    let sealed = statement::seal(&key, &summary);
    let envelope = sealed.envelope;

    let mut group = c.benchmark_group("crypto");
    group.throughput(Throughput::Elements(1));

    group.bench_function("ed25519_sign_pae", |b| {
        b.iter(|| key.sign(black_box(&message)))
    });
    // The reference limit: nothing that verifies a signature can go faster.
    group.bench_function("ring_verify_pae", |b| {
        b.iter(|| assert!(public.verify(black_box(&message), black_box(&sig))))
    });
    group.bench_function("seal_summary", |b| {
        b.iter(|| statement::seal(&key, black_box(&summary)))
    });
    group.bench_function("open_summary", |b| {
        b.iter(|| statement::open::<pb::Summary>(black_box(&envelope), &public).expect("verifies"))
    });
    group.bench_function("open_summary_and_check", |b| {
        b.iter(|| {
            let s =
                statement::open::<pb::Summary>(black_box(&envelope), &public).expect("verifies");
            SummaryView::from_pb(&s).expect("well formed")
        })
    });
    // What the acceptance costs besides the signature.
    group.bench_function("decode_and_check_only", |b| {
        b.iter(|| {
            let s: pb::Summary = statement::peek_unverified(black_box(&envelope)).expect("decodes");
            SummaryView::from_pb(&s).expect("well formed")
        })
    });
    group.finish();
}

// `criterion_group!` would add an undocumented `pub fn`; this is what it and
// `criterion_main!` expand to.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    crypto(&mut criterion);
    criterion.final_summary();
}
