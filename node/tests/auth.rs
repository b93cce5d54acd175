//! The operator credential: intake needs `authorization: Bearer <token>`;
//! no token or a wrong one is UNAUTHENTICATED and stores nothing; queries
//! and audit need none.

mod common;

use common::{Clients, REGION, Unit, authed, chunk, import_rows, open_case, with_token};
use tallytree_proto::pb;
use tonic::Code;

fn cases_request() -> pb::RecordCasesRequest {
    pb::RecordCasesRequest {
        cases: vec![open_case("AUTH-1", "2026-03-02")],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_without_the_right_token_is_unauthenticated() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();

    // No token at all.
    let err = c
        .intake
        .record_cases(tonic::Request::new(cases_request()))
        .await
        .expect_err("no token refused");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("authorization"), "{err:?}");

    // Wrong token, wrong scheme, token without scheme, token with a suffix.
    let wrong = [
        "Bearer wrong-token".to_owned(),
        format!("Basic {}", common::TOKEN),
        common::TOKEN.to_owned(),
        format!("Bearer {}x", common::TOKEN),
        format!("bearer {}", common::TOKEN),
        "Bearer ".to_owned(),
    ];
    for value in &wrong {
        let err = c
            .intake
            .record_cases(with_token(cases_request(), value))
            .await
            .expect_err("wrong token refused");
        assert_eq!(err.code(), Code::Unauthenticated, "{value}: {err:?}");
    }

    // Every intake call is guarded, the streaming one and direct tallies too.
    let err = c
        .intake
        .record_tasks(with_token(pb::RecordTasksRequest::default(), "Bearer nope"))
        .await
        .expect_err("tasks refused");
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = c
        .intake
        .record_direct_tally(tonic::Request::new(pb::DirectTally {
            period: "2026-03".into(),
            ..Default::default()
        }))
        .await
        .expect_err("direct refused");
    assert_eq!(err.code(), Code::Unauthenticated);
    let stream = tokio_stream::iter(vec![chunk(import_rows(
        2,
        vec![open_case("AUTH-2", "2026-03-03")],
    ))]);
    let err = c
        .intake
        .import(with_token(stream, "Bearer nope"))
        .await
        .expect_err("import refused");
    assert_eq!(err.code(), Code::Unauthenticated);

    // Nothing of the refused calls was stored: March was never marked as
    // changed (it would be pending) nor signed.
    let row = c.row("2026-03").await;
    assert!(!row.pending, "{row:?}");
    assert_eq!(row.months_missing, ["2026-03"]);

    // The right token passes.
    let out = c
        .intake
        .record_cases(authed(cases_request()))
        .await
        .expect("right token accepted")
        .into_inner();
    assert_eq!(out.accepted, 1);
    let row = c.wait_signed("2026-03").await;
    assert_eq!(common::registered(&row), 1);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_audit_need_no_token() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();
    c.record_cases(vec![open_case("Q-1", "2026-04-01")]).await;

    let mut anonymous = Clients::new(node.addr);
    let row = anonymous.wait_signed("2026-04").await;
    assert_eq!(row.region, REGION);
    assert_eq!(common::registered(&row), 1);
    let revisions = anonymous.revisions("2026-04").await;
    assert_eq!(revisions.len(), 1);

    // A wrong token on a read is ignored, not refused.
    let answer = anonymous
        .query
        .tally(with_token(
            pb::TallyRequest {
                region: String::new(),
                period: "2026".into(),
                depth: 0,
            },
            "Bearer whatever",
        ))
        .await;
    assert!(answer.is_ok(), "{answer:?}");
    node.stop().await;
}
