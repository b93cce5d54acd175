//! Every intake and query rule is refused with a status that names the field
//! and the rule; after each refusal the node keeps serving, and nothing of a
//! refused batch is stored.
//!
//! Refused batches carry a valid companion row registered in February 2026,
//! a month nothing valid is ever stored in: if any of it had been stored,
//! February would be marked changed (pending) or signed.

mod common;

use common::{
    Clients, Unit, authed, case, future_date, next_month, open_case, open_cases, resolved_case,
    task,
};
use tallytree_proto::pb;
use tonic::Code;

/// The month refused batches' valid rows fall in; never stored.
const UNTOUCHED: &str = "2026-02";

/// Asserts that nothing was ever stored in `month`.
async fn assert_untouched(c: &mut Clients, month: &str) {
    let row = c.row(month).await;
    assert!(!row.pending, "{month} was changed: {row:?}");
    assert_eq!(row.months_missing, [month], "{month} was signed: {row:?}");
}

/// Sends `[companion, bad]` and checks the refusal names field and rule.
async fn refuse_case(c: &mut Clients, n: usize, bad: pb::Case, expected: &[&str]) {
    let companion = open_case(&format!("COMPANION-{n}"), "2026-02-10");
    let err = c
        .intake
        .record_cases(authed(pb::RecordCasesRequest {
            cases: vec![companion, bad.clone()],
        }))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}: {err:?}");
    let msg = err.message();
    assert!(
        msg.starts_with("1 of 2 rows refused, nothing stored: cases line 2"),
        "{msg}"
    );
    for part in expected {
        assert!(msg.contains(part), "{bad:?}: {msg:?} lacks {part:?}");
    }
    // The node keeps serving: a valid call right after succeeds.
    c.record_cases(vec![open_case(&format!("OK-{n}"), "2026-01-15")])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_rule_names_the_field_and_the_rule() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();
    let future = future_date();
    let mut unknown = open_case("C-CAT", "2026-03-02");
    unknown.category = 99;
    let mut unspecified = open_case("C-CAT0", "2026-03-02");
    unspecified.category = 0;
    let mut no_state = open_case("C-STATE", "2026-03-02");
    no_state.state = 0;
    let mut bad_state = open_case("C-STATE9", "2026-03-02");
    bad_state.state = 9;
    let mut early_deadline = open_case("C-DL", "2026-03-10");
    early_deadline.deadline = "2026-03-01".into();
    let mut bad_deadline = open_case("C-DL2", "2026-03-10");
    bad_deadline.deadline = "2026-13-01".into();

    let rules: Vec<(pb::Case, Vec<String>)> = vec![
        (
            unknown,
            vec!["category (99): unknown category".into(), "neighbo".into()],
        ),
        (unspecified, vec!["category (0): unknown category".into()]),
        (
            resolved_case("C-BEFORE", "2026-03-10", "2026-03-01"),
            vec!["closed_on (2026-03-01): before registered_on (2026-03-10)".into()],
        ),
        (
            case("C-NOCLOSE", "2026-03-10", pb::CaseState::Resolved, ""),
            vec!["closed_on: required when state is resolved".into()],
        ),
        (
            case("C-NOCLOSE2", "2026-03-10", pb::CaseState::Escalated, ""),
            vec!["closed_on: required when state is escalated".into()],
        ),
        (
            case(
                "C-OPENCLOSE",
                "2026-03-10",
                pb::CaseState::InProgress,
                "2026-03-12",
            ),
            vec!["closed_on (2026-03-12): must be empty while in_progress".into()],
        ),
        (
            open_case("C-FEB30", "2026-02-30"),
            vec!["registered_on (2026-02-30): not a date".into()],
        ),
        (
            resolved_case("C-APR31", "2026-04-01", "2026-04-31"),
            vec!["closed_on (2026-04-31): not a date".into()],
        ),
        (
            open_case("C-NOPAD", "2026-3-5"),
            vec!["registered_on (2026-3-5): not a date".into()],
        ),
        (
            open_case("C-SLASH", "2026/03/05"),
            vec!["registered_on (2026/03/05): not a date".into()],
        ),
        (
            open_case("C-EMPTY", ""),
            vec!["registered_on (): not a date".into()],
        ),
        (
            open_case("C-1999", "1999-12-31"),
            vec!["registered_on (1999-12-31): outside the years 2000-2999".into()],
        ),
        (
            bad_deadline,
            vec!["deadline (2026-13-01): not a date".into()],
        ),
        (
            early_deadline,
            vec!["deadline (2026-03-01): before registered_on (2026-03-10)".into()],
        ),
        (
            open_case("C-FUTURE", &future),
            vec![format!("registered_on ({future}): in the future")],
        ),
        (
            resolved_case("C-FUTURECLOSE", "2026-03-10", &future),
            vec![format!("closed_on ({future}): in the future")],
        ),
        (no_state, vec!["state (0): required".into()]),
        (bad_state, vec!["state (9): required".into()]),
        (open_case("", "2026-03-02"), vec!["id: required".into()]),
        (
            open_case(" C-SPACE", "2026-03-02"),
            vec!["id (\" C-SPACE\")".into(), "surrounding spaces".into()],
        ),
        (
            open_case(&"X".repeat(65), "2026-03-02"),
            vec!["longer than 64 bytes".into()],
        ),
    ];
    let n = rules.len();
    for (i, (bad, expected)) in rules.into_iter().enumerate() {
        let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
        refuse_case(&mut c, i, bad, &expected).await;
    }

    // Every valid call in between was stored and signed; nothing refused was.
    let row = c
        .wait_row("2026-01", |r| common::registered(r) == n as u64)
        .await;
    // How many revisions the valid calls made depends on the debounce and
    // the machine's speed; that each was signed is what counts.
    assert!(row.months[0].revision >= 1, "{row:?}");
    assert_untouched(&mut c, UNTOUCHED).await;
    for month in ["2026-03", "2026-04"] {
        assert_untouched(&mut c, month).await;
    }
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_ids_in_one_batch_are_refused() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();

    let err = c
        .intake
        .record_cases(authed(pb::RecordCasesRequest {
            cases: vec![
                open_case("DUP", "2026-02-03"),
                open_case("OTHER", "2026-02-04"),
                resolved_case("DUP", "2026-02-03", "2026-02-05"),
            ],
        }))
        .await
        .expect_err("duplicate refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    let msg = err.message();
    assert!(msg.contains("1 of 3 rows refused, nothing stored"), "{msg}");
    assert!(msg.contains("(id DUP)"), "{msg}");
    assert!(msg.contains("id (DUP): duplicate in this batch"), "{msg}");

    let err = c
        .intake
        .record_tasks(authed(pb::RecordTasksRequest {
            tasks: vec![
                task("T-DUP", "2026-02-20", pb::TaskState::InProgress),
                task("T-DUP", "2026-02-21", pb::TaskState::Completed),
            ],
        }))
        .await
        .expect_err("duplicate task refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("id (T-DUP): duplicate in this batch"),
        "{err:?}"
    );

    c.record_cases(vec![open_case("FINE", "2026-01-05")]).await;
    c.wait_signed("2026-01").await;
    assert_untouched(&mut c, UNTOUCHED).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_never_go_backwards() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();
    c.record_cases(vec![
        resolved_case("DONE", "2026-03-02", "2026-03-09"),
        case("UP", "2026-03-02", pb::CaseState::Escalated, "2026-03-04"),
        open_case("OPEN", "2026-03-03"),
    ])
    .await;
    c.record_tasks(vec![task("T-DONE", "2026-03-20", pb::TaskState::Completed)])
        .await;
    let before = c
        .wait_row("2026-03", |r| {
            r.total.as_ref().and_then(|t| t.tasks).map(|t| t.assigned) == Some(1)
        })
        .await;
    let revision = before.months[0].revision;

    let backwards: Vec<(pb::Case, &str)> = vec![
        (
            open_case("DONE", "2026-03-02"),
            "state (in_progress): cannot go back from resolved to in_progress",
        ),
        (
            open_case("UP", "2026-03-02"),
            "state (in_progress): cannot go back from escalated to in_progress",
        ),
        (
            case("DONE", "2026-03-02", pb::CaseState::Escalated, "2026-03-09"),
            "state (escalated): the case is already resolved",
        ),
        (
            resolved_case("UP", "2026-03-02", "2026-03-04"),
            "state (resolved): the case is already escalated",
        ),
    ];
    for (i, (bad, expected)) in backwards.into_iter().enumerate() {
        refuse_case(&mut c, i, bad, &[expected]).await;
    }
    let err = c
        .intake
        .record_tasks(authed(pb::RecordTasksRequest {
            tasks: vec![
                task("T-NEW", "2026-02-20", pb::TaskState::InProgress),
                task("T-DONE", "2026-03-20", pb::TaskState::InProgress),
            ],
        }))
        .await
        .expect_err("task backwards refused");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains(
            "tasks line 2 (id T-DONE): state (in_progress): cannot go back from completed"
        ),
        "{err:?}"
    );

    // Forward moves are fine, and the same record again changes nothing.
    c.record_cases(vec![resolved_case("OPEN", "2026-03-03", "2026-03-10")])
        .await;
    let out = c
        .record_cases(vec![resolved_case("DONE", "2026-03-02", "2026-03-09")])
        .await;
    assert!(out.months_changed.is_empty(), "{out:?}");

    let after = c
        .wait_row("2026-03", |r| r.months[0].revision == revision + 1)
        .await;
    let counts = common::case_totals(after.total.as_ref());
    assert_eq!(
        (counts.registered, counts.resolved, counts.escalated),
        (3, 2, 1)
    );
    assert_untouched(&mut c, UNTOUCHED).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_rules_name_the_field() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();
    let mut untitled = task("T-1", "2026-02-10", pb::TaskState::InProgress);
    untitled.title = "  ".into();
    let mut long = task("T-2", "2026-02-10", pb::TaskState::InProgress);
    long.title = "任".repeat(201);
    let rules = [
        (untitled, "title: required"),
        (long, "title: at most 200 characters"),
        (
            task("T-3", "2026-02-29", pb::TaskState::Completed),
            "deadline (2026-02-29): not a date",
        ),
        (
            task("T-4", "", pb::TaskState::Completed),
            "deadline (): not a date",
        ),
        (
            task("T-5", "2026-02-10", pb::TaskState::Unspecified),
            "state (0): required, one of in_progress, completed",
        ),
        (
            task("", "2026-02-10", pb::TaskState::Completed),
            "id: required",
        ),
    ];
    for (bad, expected) in rules {
        let err = c
            .intake
            .record_tasks(authed(pb::RecordTasksRequest {
                tasks: vec![
                    task("T-COMPANION", "2026-02-11", pb::TaskState::Completed),
                    bad.clone(),
                ],
            }))
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
        assert!(err.message().contains("tasks line 2"), "{err:?}");
        assert!(err.message().contains(expected), "{err:?} lacks {expected}");
        c.record_tasks(vec![task("T-OK", "2026-01-31", pb::TaskState::Completed)])
            .await;
    }
    let row = c.wait_signed("2026-01").await;
    assert_eq!(
        row.total.as_ref().and_then(|t| t.tasks).map(|t| t.assigned),
        Some(1)
    );
    assert_untouched(&mut c, UNTOUCHED).await;
    node.stop().await;
}

fn counts(
    category: pb::Category,
    reg: u64,
    res: u64,
    esc: u64,
    prog: u64,
    on_time: u64,
) -> pb::CaseCounts {
    pb::CaseCounts {
        category: category as i32,
        registered: reg,
        resolved: res,
        escalated: esc,
        in_progress: prog,
        resolved_on_time: on_time,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tallies_are_checked() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();
    let future = next_month();
    let land = pb::Category::Land;
    let tasks = |assigned, completed, in_progress, overdue| pb::TaskCounts {
        assigned,
        completed,
        in_progress,
        overdue,
    };
    let entry =
        |period: &str, cases: Vec<pb::CaseCounts>, t: Option<pb::TaskCounts>| pb::DirectTally {
            period: period.into(),
            cases,
            tasks: t,
        };
    let rules: Vec<(pb::DirectTally, String)> = vec![
        (
            entry(&future, vec![counts(land, 1, 1, 0, 0, 1)], None),
            format!("period ({future}): in the future"),
        ),
        (
            entry("2026-13", vec![counts(land, 1, 1, 0, 0, 1)], None),
            "period \"2026-13\": must be a month YYYY-MM".into(),
        ),
        (
            entry("2026", vec![counts(land, 1, 1, 0, 0, 1)], None),
            "period \"2026\"".into(),
        ),
        (
            entry(UNTOUCHED, vec![counts(land, 5, 5, 1, 0, 5)], None),
            "cases[0]: resolved (5) + escalated (1) + in_progress (0) != registered (5)".into(),
        ),
        (
            entry(UNTOUCHED, vec![counts(land, 5, 3, 0, 2, 4)], None),
            "resolved_on_time (4) > resolved (3)".into(),
        ),
        (
            entry(UNTOUCHED, vec![], Some(tasks(5, 3, 1, 0))),
            "tasks: completed (3) + in_progress (1) != assigned (5)".into(),
        ),
        (
            entry(UNTOUCHED, vec![], Some(tasks(5, 3, 2, 3))),
            "tasks: overdue (3) > in_progress (2)".into(),
        ),
        (
            entry(
                UNTOUCHED,
                vec![pb::CaseCounts {
                    category: 42,
                    ..Default::default()
                }],
                None,
            ),
            "cases[0].category (42): unknown category".into(),
        ),
        (
            entry(
                UNTOUCHED,
                vec![counts(land, 1, 1, 0, 0, 1), counts(land, 2, 2, 0, 0, 2)],
                None,
            ),
            "cases[1].category".into(),
        ),
        (entry(UNTOUCHED, vec![], None), "nothing to record".into()),
    ];
    for (bad, expected) in rules {
        let err = c
            .intake
            .record_direct_tally(authed(bad.clone()))
            .await
            .expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
        assert!(
            err.message().contains(&expected),
            "{:?} lacks {expected:?}",
            err.message()
        );
        // Still serving.
        let out = c
            .intake
            .record_direct_tally(authed(entry(
                "2026-01",
                vec![counts(land, 4, 2, 1, 1, 2)],
                Some(tasks(3, 2, 1, 1)),
            )))
            .await
            .expect("valid direct tally")
            .into_inner();
        assert_eq!(out.accepted, 2);
        assert_eq!(out.months_changed, ["2026-01"]);
    }
    let row = c.wait_signed("2026-01").await;
    let total = common::case_totals(row.total.as_ref());
    assert_eq!((total.registered, total.resolved), (4, 2));
    assert_untouched(&mut c, UNTOUCHED).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_queries_are_invalid_and_foreign_regions_not_found() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();
    c.record_cases(vec![open_case("Q", "2026-05-05")]).await;
    c.wait_signed("2026-05").await;

    let cases: Vec<(&str, &str, u32, Code, &str)> = vec![
        (
            "12345",
            "2026-05",
            0,
            Code::InvalidArgument,
            "region code \"12345\": must be exactly 12 digits",
        ),
        (
            "21021400000a",
            "2026-05",
            0,
            Code::InvalidArgument,
            "must be exactly 12 digits",
        ),
        (
            "000000000000",
            "2026-05",
            0,
            Code::InvalidArgument,
            "province segment",
        ),
        (
            "210214000123",
            "2026-05",
            0,
            Code::InvalidArgument,
            "below a zero segment",
        ),
        (
            "",
            "2026-13",
            0,
            Code::InvalidArgument,
            "period \"2026-13\"",
        ),
        (
            "",
            "2026-Q5",
            0,
            Code::InvalidArgument,
            "period \"2026-Q5\"",
        ),
        (
            "",
            "26",
            0,
            Code::InvalidArgument,
            "must be YYYY-MM, YYYY-Qn, YYYY or FROM..TO",
        ),
        ("", "", 0, Code::InvalidArgument, "period"),
        (
            "",
            "2026-05..2026-01",
            0,
            Code::InvalidArgument,
            "range ends before it starts",
        ),
        (
            "",
            "2000..2200",
            0,
            Code::InvalidArgument,
            "more than 1200 months",
        ),
        (
            "",
            "2026-05",
            5,
            Code::InvalidArgument,
            "depth (5): at most 4",
        ),
        (
            "210213000000",
            "2026-05",
            0,
            Code::NotFound,
            "region (210213000000): not in the subtree of this node (210214000000)",
        ),
        (
            "210200000000",
            "2026-05",
            0,
            Code::NotFound,
            "not in the subtree",
        ),
    ];
    for (region, period, depth, code, expected) in cases {
        let err = c
            .query
            .tally(pb::TallyRequest {
                region: region.into(),
                period: period.into(),
                depth,
            })
            .await
            .expect_err("refused");
        assert_eq!(err.code(), code, "{region} {period} {depth}: {err:?}");
        assert!(
            err.message().contains(expected),
            "{:?} lacks {expected:?}",
            err.message()
        );
        // Still serving.
        let row = c.row("2026-05").await;
        assert_eq!(common::registered(&row), 1);
    }

    // A region below this node is in its subtree (no figures yet).
    let rows = c
        .query
        .tally(pb::TallyRequest {
            region: "210214001000".into(),
            period: "2026-05".into(),
            depth: 0,
        })
        .await
        .expect("subtree region answers")
        .into_inner()
        .rows;
    assert_eq!(rows[0].months_missing, ["2026-05"]);

    let audit: Vec<(&str, &str, Code, &str)> = vec![
        (
            "",
            "2026",
            Code::InvalidArgument,
            "period \"2026\": must be a month",
        ),
        ("", "2026-00", Code::InvalidArgument, "period \"2026-00\""),
        (
            "1234",
            "2026-05",
            Code::InvalidArgument,
            "must be exactly 12 digits",
        ),
        (
            "220000000000",
            "2026-05",
            Code::NotFound,
            "not in the subtree",
        ),
    ];
    for (region, period, code, expected) in audit {
        let err = c
            .audit
            .revisions(pb::RevisionsRequest {
                region: region.into(),
                period: period.into(),
            })
            .await
            .expect_err("refused");
        assert_eq!(err.code(), code, "{region} {period}: {err:?}");
        assert!(
            err.message().contains(expected),
            "{:?} lacks {expected:?}",
            err.message()
        );
    }
    assert_eq!(c.revisions("2026-05").await.len(), 1);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused_and_the_node_keeps_serving() {
    let unit = Unit::with(|c| c.intake.max_message_bytes = 16 * 1024);
    let node = unit.start().await;
    let mut c = node.clients();

    let big = open_cases("BIG", 1000, "2026-02-02");
    let err = c
        .intake
        .record_cases(authed(pb::RecordCasesRequest { cases: big.clone() }))
        .await
        .expect_err("oversized refused");
    assert!(
        matches!(err.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{err:?}"
    );
    assert!(err.message().contains("too large"), "{err:?}");
    assert!(err.message().contains("16384"), "{err:?}");

    // One oversized chunk refuses the whole stream.
    let err = c
        .import(vec![
            common::chunk(common::import_rows(2, open_cases("SMALL", 5, "2026-02-03"))),
            common::chunk(common::import_rows(10, big)),
        ])
        .await
        .expect_err("oversized chunk refused");
    assert!(
        matches!(err.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{err:?}"
    );

    c.record_cases(open_cases("FITS", 20, "2026-01-20")).await;
    let row = c.wait_signed("2026-01").await;
    assert_eq!(common::registered(&row), 20);
    assert_untouched(&mut c, UNTOUCHED).await;
    node.stop().await;
}
