//! Every kill point, with real processes: a street's node and its village's
//! node run as `tallytree-node` binaries, the village pushing to the street
//! over mutual TLS through a relay; one of them is armed with
//! `TALLYTREE_KILL_AT` and dies there (SIGKILL, by its own hand), the test
//! restarts it without the variable, and then checks the invariant: every
//! receipt the village holds names a summary the street holds with that
//! revision and digest, no summary is counted twice, and every total is
//! exactly what the village recorded.

mod chaos;
mod fed;

use std::collections::BTreeMap;

use chaos::{Book, Proc, Tree, Witness, held_receipts, receipt_of, record_surely};
use fed::{STREET, VILLAGE_1, past_month};
use tallytree_node::store::{Cf, Store, layout};
use tallytree_proto::{Digest, Month, pb, statement};
use tonic::Code;

/// The street's node, then the village's.
const PARENT: usize = 0;
/// The village's node.
const VILLAGE: usize = 1;

/// `n` new cases `{prefix}-{i}` of `month`.
fn cases(prefix: &str, n: usize, month: Month) -> Vec<pb::Case> {
    (0..n)
        .map(|i| {
            fed::open_case(
                &format!("{prefix}-{i}"),
                pb::Category::Land,
                &fed::day(month, 1 + (i % 25) as u64),
            )
        })
        .collect()
}

/// Records `cases` at the village (retrying while it is down) and notes
/// them in `book`.
async fn record(tree: &Tree, book: &mut Book, cases: Vec<pb::Case>) {
    record_surely(&tree.procs[VILLAGE].route(), &cases).await;
    book.insert(&cases);
}

/// Waits until the village holds a receipt for `revision` of `month`;
/// returns it.
async fn wait_receipt(village: &Proc, month: Month, revision: u64) -> pb::Envelope {
    let route = village.route();
    let region = village.region;
    fed::wait_until(
        &format!(
            "{} holding a receipt for revision {revision}",
            village.label
        ),
        || {
            let route = route.clone();
            async move {
                let at = route.now().ok_or("the village is down")?;
                let held = held_receipts(&at, region, month)
                    .await
                    .map_err(|s| format!("{s:?}"))?;
                held.into_iter()
                    .find(|r| receipt_of(r).revision == revision)
                    .ok_or_else(|| "not yet".to_owned())
            }
        },
    )
    .await
}

/// Every revision of the village's summary the stopped street's store
/// holds: revision, digest, and when the street received it.
async fn stored_at_parent(tree: &Tree, month: Month) -> Vec<(u64, Digest, i64)> {
    let store = fed::open_store(&tree.procs[PARENT].data_dir).await;
    layout::summary_revisions(&store, tree.procs[VILLAGE].region, month)
        .expect("summaries")
        .iter()
        .map(|row| {
            let view = row.view().expect("a summary");
            (
                view.revision,
                row.digest().expect("digest"),
                row.received_at_ms,
            )
        })
        .collect()
}

/// The checks every test ends with: the invariant on the running nodes,
/// exact totals, then the invariant on the stopped nodes' stores.
async fn finish(mut tree: Tree, book: &Book, month: Month) -> Witness {
    let mut witness = Witness::new();
    tree.check(&mut witness, month).await;
    let books = BTreeMap::from([(VILLAGE, book.tally(month))]);
    tree.converge(&books, month).await;
    tree.check(&mut witness, month).await;
    tree.stop_and_check_stores(&mut witness).await;
    assert!(witness.violations.is_empty(), "{:#?}", witness.violations);
    assert!(witness.checked > 0, "no receipt checked");
    witness
}

/// The street dies at `point` while it takes the village's second
/// revision; restarted, it answers the village's retry from what it
/// stored (the receipt says when it first received the summary), and
/// everything converges.
async fn a_parent_killed_at(point: &str) {
    fed::init_log();
    let month = past_month();
    let armed = format!("{point}@2");
    let mut tree = Tree::start(
        vec![chaos::unit(STREET), chaos::unit(VILLAGE_1)],
        &[(STREET.0, &armed)],
    )
    .await;
    let mut book = Book::default();

    // Revision 1 is taken and receipted.
    record(&tree, &mut book, cases("A", 5, month)).await;
    wait_receipt(&tree.procs[VILLAGE], month, 1).await;

    // Revision 2: the street dies at the point while taking it.
    record(&tree, &mut book, cases("B", 7, month)).await;
    tree.procs[PARENT].wait_killed_at(point).await;
    let village = tree.procs[VILLAGE].remote();
    let region = tree.procs[VILLAGE].region;
    let held_at_death = held_receipts(&village, region, month)
        .await
        .expect("receipts read");
    let stored = stored_at_parent(&tree, month).await;
    let revisions: Vec<u64> = stored.iter().map(|s| s.0).collect();
    eprintln!(
        "{point}: the dead street stored revisions {revisions:?}; the village held receipts for {:?}",
        held_at_death
            .iter()
            .map(|r| receipt_of(r).revision)
            .collect::<Vec<_>>()
    );
    // Both points come after the synced write, so the street died holding
    // revision 2; before the reply, so the village has no receipt for it.
    if point != "submit-after-reply" {
        assert_eq!(revisions, [1, 2], "{point}: the street's store at death");
        let receipted: Vec<u64> = held_at_death
            .iter()
            .map(|r| receipt_of(r).revision)
            .collect();
        assert_eq!(receipted, [1], "{point}: receipts the village held");
    }
    for r in &held_at_death {
        let r = receipt_of(r);
        assert!(
            stored
                .iter()
                .any(|(rev, d, _)| *rev == r.revision && d.0.as_slice() == r.digest),
            "{point}: the village holds a receipt for revision {} the dead street's store lacks",
            r.revision
        );
    }

    // Restarted without the kill point: the village's pusher retries
    // revision 2 and is answered from the stored row.
    tree.procs[PARENT].restart(None).await;
    let receipt = receipt_of(&wait_receipt(&tree.procs[VILLAGE], month, 2).await);
    let (_, digest, received_at_ms) = *stored
        .iter()
        .find(|s| s.0 == 2)
        .expect("revision 2 was stored before the kill");
    assert_eq!(receipt.digest, digest.0.to_vec(), "{point}");
    assert_eq!(
        receipt.received_at_ms, received_at_ms,
        "{point}: the receipt for revision 2 is the one for the row stored before the kill"
    );

    // And it goes on.
    record(&tree, &mut book, cases("C", 3, month)).await;
    wait_receipt(&tree.procs[VILLAGE], month, 3).await;
    let witness = finish(tree, &book, month).await;
    eprintln!(
        "{point}: {} receipts checked, {} held",
        witness.checked,
        witness.receipts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_killed_after_the_synced_write_answers_the_retry_from_its_store() {
    a_parent_killed_at("submit-after-sync").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_killed_after_signing_the_receipt_answers_the_retry_from_its_store() {
    a_parent_killed_at("submit-after-receipt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_killed_after_its_reply_keeps_what_it_receipted() {
    a_parent_killed_at("submit-after-reply").await;
}

/// The village dies after verifying the street's receipt for revision 2,
/// before storing it. Restarted, it pushes revision 2 again and is given
/// the same receipt, byte for byte; the street stored the revision once
/// and counts it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_killed_before_storing_a_receipt_pushes_again_and_gets_the_same_one() {
    fed::init_log();
    let month = past_month();
    let point = "push-before-receipt-stored";
    let mut tree = Tree::start(
        vec![chaos::unit(STREET), chaos::unit(VILLAGE_1)],
        &[(VILLAGE_1.0, "push-before-receipt-stored@2")],
    )
    .await;
    let mut book = Book::default();
    record(&tree, &mut book, cases("A", 5, month)).await;
    wait_receipt(&tree.procs[VILLAGE], month, 1).await;
    record(&tree, &mut book, cases("B", 7, month)).await;
    tree.procs[VILLAGE].wait_killed_at(point).await;

    // Dead: revision 2 waits in its outbox, without a receipt; the street
    // holds it, and what it would answer for it.
    {
        let store = fed::open_store(&tree.procs[VILLAGE].data_dir).await;
        assert_eq!(layout::outbox(&store).expect("outbox"), vec![(month, 2)]);
        let receipts = layout::envelopes(&store, Cf::Receipts, b"").expect("receipts");
        let revisions: Vec<u64> = receipts.iter().map(|r| receipt_of(r).revision).collect();
        assert_eq!(revisions, [1], "receipts stored before the kill");
    }
    let region = tree.procs[VILLAGE].region;
    let street = tree.procs[PARENT].remote();
    let held = fed::revisions(&street, region, month).await;
    let revisions: Vec<u64> = held.iter().map(|(_, v)| v.revision).collect();
    assert_eq!(revisions, [1, 2], "the street took revision 2");
    let issued = street_receipt(&street, region, month, 2).await;

    tree.procs[VILLAGE].restart(None).await;
    let receipt = wait_receipt(&tree.procs[VILLAGE], month, 2).await;
    assert_eq!(
        receipt, issued,
        "the receipt given again is the one given before the kill"
    );
    let accepted = tree.procs[PARENT]
        .log()
        .lines()
        .filter(|l| {
            l.contains("accepted summary")
                && l.contains(&format!("child={region}"))
                && l.contains("revision=2")
        })
        .count();
    assert_eq!(accepted, 1, "the street stored revision 2 once");

    record(&tree, &mut book, cases("C", 3, month)).await;
    wait_receipt(&tree.procs[VILLAGE], month, 3).await;
    let witness = finish(tree, &book, month).await;
    eprintln!(
        "{point}: {} receipts checked, {} held",
        witness.checked,
        witness.receipts()
    );
}

/// The receipt the street `at` gives for `region`'s latest summary of
/// `month` (signed again from its stored row), as its evidence bundle
/// carries it; checked to be for `revision`.
async fn street_receipt(
    at: &fed::Remote,
    region: tallytree_proto::RegionCode,
    month: Month,
    revision: u64,
) -> pb::Envelope {
    let mut items =
        tallytree_proto::pb::audit_client::AuditClient::new(at.with_token(fed::AUDITOR_TOKEN))
            .export_evidence(pb::ExportEvidenceRequest {
                region: region.to_string(),
                period: month.to_string(),
            })
            .await
            .expect("export")
            .into_inner();
    while let Some(item) = items.message().await.expect("item") {
        if let Some(pb::evidence_item::Item::Receipt(env)) = item.item
            && receipt_of(&env).region == region.to_string()
        {
            let r: pb::Receipt = statement::peek_unverified(&env).expect("a receipt");
            assert_eq!(r.revision, revision, "{r:?}");
            return env;
        }
    }
    panic!("no receipt for {region} in the street's bundle");
}

/// 300 new cases `IMP-*` of `month` as three chunks of 100 rows.
fn import_chunks(month: Month) -> (Vec<pb::ImportChunk>, Vec<pb::Case>) {
    let all = cases("IMP", 300, month);
    let chunks = all
        .chunks(100)
        .enumerate()
        .map(|(c, rows)| pb::ImportChunk {
            cases: rows
                .iter()
                .enumerate()
                .map(|(i, case)| pb::ImportCase {
                    line: 2 + (c * 100 + i) as u64,
                    case: Some(case.clone()),
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    (chunks, all)
}

/// Streams `chunks` to the village's Intake.Import as its operator.
async fn import(
    tree: &Tree,
    chunks: Vec<pb::ImportChunk>,
) -> Result<pb::RecordResponse, tonic::Status> {
    let at = tree.procs[VILLAGE].remote();
    tallytree_proto::pb::intake_client::IntakeClient::new(at.with_token(fed::OPERATOR_TOKEN))
        .import(tokio_stream::iter(chunks))
        .await
        .map(tonic::Response::into_inner)
}

/// The village dies at `armed` in a bulk import of 300 rows; restarted,
/// the import counts whole (`committed`) or not at all, and sending it
/// again counts it once.
async fn an_import_killed_at(armed: &str, committed: bool) {
    fed::init_log();
    let month = past_month();
    let point = armed.split('@').next().expect("a point");
    let mut tree = Tree::start(
        vec![chaos::unit(STREET), chaos::unit(VILLAGE_1)],
        &[(VILLAGE_1.0, armed)],
    )
    .await;
    let mut book = Book::default();
    record(&tree, &mut book, cases("A", 5, month)).await;
    wait_receipt(&tree.procs[VILLAGE], month, 1).await;

    let (chunks, rows) = import_chunks(month);
    let err = import(&tree, chunks.clone())
        .await
        .expect_err("the node dies in the import");
    assert!(
        matches!(
            err.code(),
            Code::Unavailable | Code::Unknown | Code::Internal
        ),
        "{point}: the client is told the call failed: {err:?}"
    );
    eprintln!("{armed}: the import's client was told: {err:?}");
    tree.procs[VILLAGE].wait_killed_at(point).await;
    {
        let store = fed::open_store(&tree.procs[VILLAGE].data_dir).await;
        let mut staged = 0;
        store
            .scan(Cf::Staging, b"", &mut |_, _| {
                staged += 1;
                true
            })
            .expect("scan");
        assert!(staged > 0, "{point}: the import's rows were staged");
        let marks = layout::committed_imports(&store).expect("marks");
        assert_eq!(
            marks.len(),
            usize::from(committed),
            "{point}: commit marks {marks:?}"
        );
    }

    tree.procs[VILLAGE].restart(None).await;
    if committed {
        book.insert(&rows);
    }
    let books = BTreeMap::from([(VILLAGE, book.tally(month))]);
    tree.converge(&books, month).await;
    let mut witness = Witness::new();
    tree.check(&mut witness, month).await;

    // The operator, not knowing, sends the whole import again: it counts
    // once.
    let out = import(&tree, chunks).await.expect("the import goes in");
    assert_eq!(out.accepted, 300, "{out:?}");
    assert!(out.refused.is_empty(), "{out:?}");
    book.insert(&rows);
    let witness = finish(tree, &book, month).await;
    eprintln!(
        "{armed}: {} receipts checked, {} held",
        witness.checked,
        witness.receipts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_after_a_chunk_counts_none_of_its_rows() {
    an_import_killed_at("import-after-chunk@2", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_killed_after_its_commit_counts_all_its_rows_once() {
    an_import_killed_at("import-after-commit", true).await;
}
