//! Nothing acknowledged is lost: a restart keeps every record, tally and
//! signed revision byte for byte, and a SIGKILL right after an import
//! returned loses none of the rows it reported accepted; the months it
//! changed are signed after the restart because their marks survive too.
//! What depends on the date (overdue tasks) is re-derived after a restart.

mod common;

use common::{
    Clients, Unit, chunk, import_rows, open_case, open_cases, registered, resolved_case, task,
};
use std::time::Duration;

use tallytree_node::config::SignerConfig;
use tallytree_proto::{Month, pb};

const MONTHS: [&str; 4] = ["2026-01", "2026-02", "2026-03", "2026-04"];

/// Everything a node answers about `period`: figures, revisions, digests,
/// and the signed envelopes of each month.
async fn snapshot(c: &mut Clients, period: &str) -> (pb::TallyResponse, Vec<Vec<pb::Envelope>>) {
    let tally = c
        .query
        .tally(pb::TallyRequest {
            region: String::new(),
            period: period.into(),
            depth: 0,
        })
        .await
        .expect("query answers")
        .into_inner();
    let mut envelopes = Vec::new();
    for month in MONTHS {
        envelopes.push(c.revisions(month).await);
    }
    (tally, envelopes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_every_record_tally_and_signed_revision() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();

    c.record_cases(open_cases("JAN", 40, "2026-01-05")).await;
    c.record_cases(open_cases("FEB", 25, "2026-02-05")).await;
    c.record_tasks(vec![
        task("T-1", "2026-03-10", pb::TaskState::Completed),
        task("T-2", "2026-03-20", pb::TaskState::InProgress),
    ])
    .await;
    c.intake
        .record_direct_tally(common::authed(pb::DirectTally {
            period: "2026-04".into(),
            cases: vec![pb::CaseCounts {
                category: pb::Category::Labour as i32,
                registered: 9,
                resolved: 6,
                escalated: 1,
                in_progress: 2,
                resolved_on_time: 5,
            }],
            tasks: None,
        }))
        .await
        .expect("direct tally");
    c.wait_signed("2026-01..2026-04").await;
    // A second revision of January.
    c.record_cases(vec![resolved_case("JAN-0", "2026-01-05", "2026-01-09")])
        .await;
    c.wait_row("2026-01", |r| r.months[0].revision == 2).await;
    let before = snapshot(&mut c, "2026-01..2026-04").await;
    assert_eq!(before.0.rows[0].months.len(), 4);
    assert!(!before.0.rows[0].pending);
    node.stop().await;

    // Same data directory, new process state.
    let node = unit.start().await;
    let mut c = node.clients();
    // The signer's catch-up at start (task months re-derived, found
    // unchanged) is over before the node serves: nothing is pending.
    let after = snapshot(&mut c, "2026-01..2026-04").await;
    assert_eq!(after, before, "figures, revisions and envelopes survive");

    // The records survive too: the resolved case cannot go back, the same
    // record again changes nothing, and new changes continue the revisions.
    let err = c
        .intake
        .record_cases(common::authed(pb::RecordCasesRequest {
            cases: vec![open_case("JAN-0", "2026-01-05")],
        }))
        .await
        .expect_err("a stored resolved case cannot reopen");
    assert!(
        err.message().contains("cannot go back from resolved"),
        "{err:?}"
    );
    let out = c.record_cases(vec![open_case("FEB-3", "2026-02-05")]).await;
    assert!(
        out.months_changed.is_empty(),
        "FEB-3 already stored: {out:?}"
    );
    c.record_cases(vec![open_case("FEB-NEW", "2026-02-06")])
        .await;
    let feb = c.wait_row("2026-02", |r| r.months[0].revision == 2).await;
    assert_eq!(registered(&feb), 26);
    let revisions = c.revisions("2026-02").await;
    assert_eq!(revisions.len(), 2);
    assert_eq!(
        revisions[0], before.1[1][0],
        "revision 1 kept byte for byte"
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_right_after_an_import_loses_nothing_accepted() {
    let mut unit = Unit::new();

    // Run 1: a month imported and signed.
    let node = unit.spawn_binary().await;
    let mut c = node.clients();
    let out = c
        .import(vec![chunk(import_rows(
            2,
            open_cases("KEPT", 120, "2026-07-03"),
        ))])
        .await
        .expect("import");
    assert_eq!(out.accepted, 120);
    let july = c.wait_signed("2026-07").await;
    let july_revisions = c.revisions("2026-07").await;
    assert_eq!(july_revisions.len(), 1);
    node.kill();

    // Run 2: the signer waits a minute, so nothing gets signed before the
    // SIGKILL that follows the import's answer at once.
    unit.config.signer = SignerConfig {
        debounce_ms: 60_000,
        max_delay_ms: 60_000,
    };
    let node = unit.spawn_binary().await;
    let mut c = node.clients();
    assert_eq!(
        c.row("2026-07").await,
        july,
        "signed month survives SIGKILL"
    );
    let mut rows = import_rows(2, open_cases("AUG", 700, "2026-08-04"));
    rows.extend(import_rows(
        702,
        (0..30)
            .map(|i| resolved_case(&format!("KEPT-{i}"), "2026-07-03", "2026-07-20"))
            .collect(),
    ));
    let second: Vec<pb::ImportCase> = rows.split_off(400);
    let out = c
        .import(vec![chunk(rows), chunk(second)])
        .await
        .expect("import");
    assert_eq!(out.accepted, 730);
    assert_eq!(out.months_changed, ["2026-07", "2026-08"]);
    node.kill();

    // Run 3: with a fast signer again; the marks left by run 2 get signed.
    unit.config.signer = SignerConfig {
        debounce_ms: 20,
        max_delay_ms: 200,
    };
    let node = unit.spawn_binary().await;
    let mut c = node.clients();
    let row = c
        .wait_row("2026-07..2026-08", |r| {
            r.months_missing.is_empty() && r.months[0].revision == 2
        })
        .await;
    let july = common::case_totals(row.months[0].total.as_ref());
    let august = common::case_totals(row.months[1].total.as_ref());
    assert_eq!((july.registered, july.resolved), (120, 30));
    assert_eq!((august.registered, august.in_progress), (700, 700));
    assert_eq!(row.months[1].revision, 1);

    let revisions = c.revisions("2026-07").await;
    assert_eq!(revisions.len(), 2);
    assert_eq!(revisions[0], july_revisions[0], "revision 1 unchanged");
    node.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_right_after_unary_calls_loses_nothing_accepted() {
    let mut unit = Unit::with(|c| {
        c.signer = SignerConfig {
            debounce_ms: 60_000,
            max_delay_ms: 60_000,
        }
    });
    let node = unit.spawn_binary().await;
    let mut c = node.clients();
    for i in 0..20 {
        c.record_cases(vec![open_case(&format!("U-{i}"), "2026-09-01")])
            .await;
    }
    c.record_tasks(vec![task("T-U", "2026-09-30", pb::TaskState::Completed)])
        .await;
    let pending = c.row("2026-09").await;
    assert!(pending.pending, "{pending:?}");
    node.kill();

    unit.config.signer = SignerConfig {
        debounce_ms: 20,
        max_delay_ms: 200,
    };
    let node = unit.spawn_binary().await;
    let mut c = node.clients();
    let row = c.wait_signed("2026-09").await;
    assert_eq!(registered(&row), 20);
    assert_eq!(
        row.total
            .as_ref()
            .and_then(|t| t.tasks)
            .map(|t| t.completed),
        Some(1)
    );
    assert_eq!(row.months[0].revision, 1, "one revision for all of it");
    node.kill();
}

/// Overdue tasks of the month `row` covers.
fn overdue(row: &pb::RegionRow) -> Option<u64> {
    row.total.as_ref().and_then(|t| t.tasks).map(|t| t.overdue)
}

/// A task falls overdue when its deadline passes, not when a record
/// changes. A node that was down while that happened must count it once it
/// is back, as `Signer::mark_task_months` promises. Moving the unit's time
/// zone from UTC-12 to UTC+14 across the restart moves "today" past the
/// deadline without waiting for midnight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_on_a_later_day_counts_the_tasks_that_fell_overdue_meanwhile() {
    let mut unit = Unit::with(|c| c.utc_offset_hours = -12);
    let day = (chrono::Utc::now() - chrono::Duration::hours(12)).date_naive();
    let month = Month::of(day).expect("month").to_string();
    let node = unit.start().await;
    let mut c = node.clients();
    c.record_tasks(vec![task(
        "DUE-TODAY",
        &day.to_string(),
        pb::TaskState::InProgress,
    )])
    .await;
    let row = c.wait_signed(&month).await;
    assert_eq!(overdue(&row), Some(0), "due today is not overdue yet");
    node.stop().await;

    unit.config.utc_offset_hours = 14;
    let node = unit.start().await;
    let mut c = node.clients();
    // Signing after a restart takes milliseconds; give it ample time.
    let row = c
        .wait_row_within(&month, Duration::from_secs(5), |r| overdue(r) == Some(1))
        .await;
    assert_eq!(row.months[0].revision, 2);
    node.stop().await;
}
