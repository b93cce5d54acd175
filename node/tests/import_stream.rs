//! The streaming Intake.Import: all or nothing by default, the valid rows
//! with `skip_invalid`, nothing at all with `dry_run`; refusals point back to
//! the caller's line numbers.

mod common;

use common::{
    Clients, Unit, chunk, import_rows, open_case, open_cases, registered, resolved_case, task,
};
use tallytree_proto::pb;
use tonic::Code;

/// 300 rows of May 2026 on lines 2..=301 in three chunks, with two bad rows:
/// line 150 closes before it was registered, line 250 has no category.
fn rows_with_two_bad(skip_invalid: bool, dry_run: bool) -> Vec<pb::ImportChunk> {
    let mut cases = open_cases("IMP", 300, "2026-05-10");
    cases[148] = resolved_case("IMP-148", "2026-05-10", "2026-05-01");
    cases[248].category = 0;
    let mut rows = import_rows(2, cases);
    let third = rows.split_off(200);
    let second = rows.split_off(100);
    let mut chunks = vec![chunk(rows), chunk(second), chunk(third)];
    chunks[0].skip_invalid = skip_invalid;
    chunks[0].dry_run = dry_run;
    chunks
}

fn assert_two_refusals(out: &pb::RecordResponse) {
    let lines: Vec<u64> = out.refused.iter().map(|r| r.line).collect();
    assert_eq!(lines, [150, 250], "{out:?}");
    assert_eq!(out.refused[0].id, "IMP-148");
    assert_eq!(
        out.refused[0].reason,
        "closed_on (2026-05-01): before registered_on (2026-05-10)"
    );
    assert_eq!(out.refused[1].id, "IMP-248");
    assert!(
        out.refused[1]
            .reason
            .starts_with("category (0): unknown category"),
        "{out:?}"
    );
}

/// Asserts that nothing was ever stored in `month`.
async fn assert_untouched(c: &mut Clients, month: &str) {
    let row = c.row(month).await;
    assert!(!row.pending, "{month} was changed: {row:?}");
    assert_eq!(row.months_missing, [month], "{month} was signed: {row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_row_refuses_the_whole_import() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();

    let out = c
        .import(rows_with_two_bad(false, false))
        .await
        .expect("import answers");
    assert_eq!(out.accepted, 0, "{out:?}");
    assert!(out.months_changed.is_empty(), "{out:?}");
    assert_two_refusals(&out);
    assert_untouched(&mut c, "2026-05").await;

    // The same rows without the bad ones go in whole.
    let good: Vec<pb::ImportChunk> = rows_with_two_bad(false, false)
        .into_iter()
        .map(|mut ch| {
            ch.cases.retain(|r| r.line != 150 && r.line != 250);
            ch
        })
        .collect();
    let out = c.import(good).await.expect("import answers");
    assert_eq!(out.accepted, 298, "{out:?}");
    assert!(out.refused.is_empty());
    assert_eq!(out.months_changed, ["2026-05"]);
    let row = c.wait_signed("2026-05").await;
    assert_eq!(registered(&row), 298);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_invalid_stores_the_valid_rows_and_reports_the_refused_lines() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();

    let mut chunks = rows_with_two_bad(true, false);
    chunks[2].tasks = vec![
        pb::ImportTask {
            line: 400,
            task: Some(task("T-OK", "2026-05-31", pb::TaskState::Completed)),
        },
        pb::ImportTask {
            line: 401,
            task: Some(task("T-BAD", "2026-05-32", pb::TaskState::Completed)),
        },
    ];
    let out = c.import(chunks).await.expect("import answers");
    assert_eq!(out.accepted, 299, "{out:?}");
    let lines: Vec<u64> = out.refused.iter().map(|r| r.line).collect();
    assert_eq!(lines, [150, 250, 401], "{out:?}");
    assert_eq!(
        out.refused[2].reason,
        "deadline (2026-05-32): not a date (YYYY-MM-DD)"
    );
    assert_eq!(out.months_changed, ["2026-05"]);

    let row = c.wait_signed("2026-05").await;
    assert_eq!(registered(&row), 298);
    assert_eq!(
        row.total.as_ref().and_then(|t| t.tasks).map(|t| t.assigned),
        Some(1)
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_checks_every_row_and_stores_nothing() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();

    // Bad rows: reported, nothing stored.
    let out = c
        .import(rows_with_two_bad(false, true))
        .await
        .expect("import answers");
    assert_eq!(out.accepted, 0);
    assert_two_refusals(&out);

    // Bad rows with skip_invalid: still nothing stored.
    let out = c
        .import(rows_with_two_bad(true, true))
        .await
        .expect("import answers");
    assert_eq!(out.accepted, 0);
    assert_two_refusals(&out);

    // All valid: no refusals, nothing stored.
    let mut chunks = vec![chunk(import_rows(2, open_cases("DRY", 50, "2026-05-11")))];
    chunks[0].dry_run = true;
    let out = c.import(chunks).await.expect("import answers");
    assert_eq!(out.accepted, 0, "{out:?}");
    assert!(out.refused.is_empty(), "{out:?}");
    // months_changed means "will get a new signed revision": none will.
    assert!(out.months_changed.is_empty(), "{out:?}");

    assert_untouched(&mut c, "2026-05").await;

    // A dry run does not see rows of its own batch as stored either: a
    // real import of the same ids afterwards is a first import.
    let out = c
        .import(vec![chunk(import_rows(
            2,
            open_cases("DRY", 50, "2026-05-11"),
        ))])
        .await
        .expect("import answers");
    assert_eq!(out.accepted, 50);
    let row = c.wait_signed("2026-05").await;
    assert_eq!(registered(&row), 50);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flags_of_the_first_chunk_rule_the_stream() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();

    // skip_invalid on a later chunk does not turn skipping on.
    let mut chunks = rows_with_two_bad(false, false);
    chunks[1].skip_invalid = true;
    chunks[2].skip_invalid = true;
    let out = c.import(chunks).await.expect("import answers");
    assert_eq!(out.accepted, 0);
    assert_two_refusals(&out);

    // dry_run on a later chunk does not turn a real import into a dry run.
    let mut chunks = vec![
        chunk(import_rows(2, open_cases("A", 10, "2026-05-12"))),
        chunk(import_rows(12, open_cases("B", 10, "2026-05-12"))),
    ];
    chunks[1].dry_run = true;
    let out = c.import(chunks).await.expect("import answers");
    assert_eq!(out.accepted, 20);
    let row = c.wait_signed("2026-05").await;
    assert_eq!(registered(&row), 20);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_carries_cases_and_tasks_of_many_months() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();

    let mut first = chunk(import_rows(2, open_cases("JAN", 7, "2026-01-03")));
    first.tasks = vec![pb::ImportTask {
        line: 1,
        task: Some(task("T-MAR", "2026-03-15", pb::TaskState::InProgress)),
    }];
    let second = chunk(import_rows(
        20,
        vec![
            open_case("FEB-1", "2026-02-27"),
            resolved_case("FEB-2", "2026-02-28", "2026-03-01"),
        ],
    ));
    let out = c
        .import(vec![first, second, pb::ImportChunk::default()])
        .await
        .expect("import answers");
    assert_eq!(out.accepted, 10);
    assert_eq!(out.months_changed, ["2026-01", "2026-02", "2026-03"]);

    let row = c.wait_signed("2026-01..2026-03").await;
    assert_eq!(registered(&row), 9);
    let march = &row.months[2];
    let tasks = march.total.as_ref().and_then(|t| t.tasks).expect("tasks");
    // Due in March and not done: in progress and overdue by now.
    assert_eq!(
        (tasks.assigned, tasks.in_progress, tasks.overdue),
        (1, 1, 1)
    );

    // An empty stream stores nothing and says so.
    let out = c.import(Vec::new()).await.expect("empty import answers");
    assert_eq!(out, pb::RecordResponse::default());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_over_the_row_limit_is_refused_whole() {
    let unit = Unit::with(|c| c.intake.max_import_rows = 50);
    let node = unit.start().await;
    let mut c = node.clients();

    let chunks = vec![
        chunk(import_rows(2, open_cases("LIM-A", 30, "2026-05-13"))),
        chunk(import_rows(32, open_cases("LIM-B", 30, "2026-05-13"))),
    ];
    let err = c.import(chunks).await.expect_err("over the limit");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .contains("more than 50 rows in one import (intake.max_import_rows)"),
        "{err:?}"
    );
    assert_untouched(&mut c, "2026-05").await;

    let out = c
        .import(vec![chunk(import_rows(
            2,
            open_cases("LIM-A", 50, "2026-05-13"),
        ))])
        .await
        .expect("at the limit");
    assert_eq!(out.accepted, 50);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_updates_stored_cases_and_refuses_backward_moves() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();
    c.record_cases(open_cases("UPD", 3, "2026-06-01")).await;
    let signed = c.wait_signed("2026-06").await;

    // Resolving two and re-sending one unchanged: three accepted.
    let out = c
        .import(vec![chunk(import_rows(
            2,
            vec![
                resolved_case("UPD-0", "2026-06-01", "2026-06-05"),
                resolved_case("UPD-1", "2026-06-01", "2026-06-06"),
                open_case("UPD-2", "2026-06-01"),
            ],
        ))])
        .await
        .expect("import answers");
    assert_eq!(out.accepted, 3, "{out:?}");
    let row = c
        .wait_row("2026-06", |r| {
            r.months[0].revision > signed.months[0].revision
        })
        .await;
    assert_eq!(common::case_totals(row.total.as_ref()).resolved, 2);

    // Moving a resolved case back to in progress refuses the whole import.
    let out = c
        .import(vec![chunk(import_rows(
            2,
            vec![
                resolved_case("UPD-2", "2026-06-01", "2026-06-07"),
                open_case("UPD-0", "2026-06-01"),
            ],
        ))])
        .await
        .expect("import answers");
    assert_eq!(out.accepted, 0);
    assert_eq!(out.refused.len(), 1);
    assert_eq!(out.refused[0].line, 3);
    assert!(
        out.refused[0]
            .reason
            .contains("cannot go back from resolved"),
        "{out:?}"
    );
    let again = c.row("2026-06").await;
    assert!(!again.pending);
    assert_eq!(again.months, row.months);
    node.stop().await;
}
