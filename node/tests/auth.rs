//! Who may call what. The node serves TLS only, with a server certificate
//! of the unit's own CA. Intake and Enrolments need an operator credential,
//! Query any credential, Audit an auditor's (`authorization: Bearer
//! <token>`): no token or an unknown one is UNAUTHENTICATED, a credential
//! of the wrong role PERMISSION_DENIED, and a refused call stores nothing.
//! Node.Identity needs none; `access.public_figures` opens Query alone. A
//! credential revoked in the file stops working at the next call.

mod common;

use common::{
    AUDITOR_TOKEN, Clients, NAME, OPERATOR_TOKEN, READER_TOKEN, REGION, Unit, authed, chunk,
    identity, import_rows, open_case, with_token,
};
use tallytree_node::access::{Credentials, Role};
use tallytree_proto::pb::{
    self, audit_client::AuditClient, enrolments_client::EnrolmentsClient,
    intake_client::IntakeClient, node_client::NodeClient, query_client::QueryClient,
};
use tonic::{
    Code, Status,
    transport::{Certificate, ClientTlsConfig, Endpoint},
};

fn cases_request() -> pb::RecordCasesRequest {
    pb::RecordCasesRequest {
        cases: vec![open_case("AUTH-1", "2026-03-02")],
    }
}

fn tally_request(period: &str) -> pb::TallyRequest {
    pb::TallyRequest {
        region: String::new(),
        period: period.into(),
        depth: 0,
    }
}

fn revisions_request(month: &str) -> pb::RevisionsRequest {
    pb::RevisionsRequest {
        region: String::new(),
        period: month.into(),
    }
}

/// `Bearer <token>`.
fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Checks a refusal's code and that its message says `part`.
fn assert_denied(err: &Status, code: Code, part: &str) {
    assert_eq!(err.code(), code, "{err:?}");
    assert!(
        err.message().contains(part),
        "{:?} does not say {part:?}",
        err.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_without_the_right_token_is_unauthenticated() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();
    // TLS verified by the unit's CA, no credential of its own.
    let mut anonymous = IntakeClient::new(node.remote().channel());

    // No token at all.
    let err = anonymous
        .record_cases(tonic::Request::new(cases_request()))
        .await
        .expect_err("no token refused");
    assert_denied(
        &err,
        Code::Unauthenticated,
        "authorization: an operator credential required",
    );

    // Wrong token, wrong scheme, token with a suffix, lowercase scheme,
    // empty token.
    let wrong = [
        "Bearer wrong-token".to_owned(),
        format!("Basic {OPERATOR_TOKEN}"),
        format!("Bearer {OPERATOR_TOKEN}x"),
        format!("bearer {OPERATOR_TOKEN}"),
        "Bearer ".to_owned(),
    ];
    for value in &wrong {
        let err = anonymous
            .record_cases(with_token(cases_request(), value))
            .await
            .expect_err("wrong token refused");
        assert_eq!(err.code(), Code::Unauthenticated, "{value}: {err:?}");
        // A value that is no "Bearer <token>" is refused as such, a token
        // the node does not know as unknown.
        let scheme = value.starts_with("Bearer ");
        let expected = if scheme {
            "authorization: unknown or revoked credential"
        } else {
            "authorization: expected \"Bearer <token>\""
        };
        assert!(err.message().contains(expected), "{value}: {err:?}");
    }

    // Every intake call is guarded, the streaming one and direct tallies too.
    let err = anonymous
        .record_tasks(with_token(pb::RecordTasksRequest::default(), "Bearer nope"))
        .await
        .expect_err("tasks refused");
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = anonymous
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
    let err = anonymous
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
    let out = anonymous
        .record_cases(authed(cases_request()))
        .await
        .expect("right token accepted")
        .into_inner();
    assert_eq!(out.accepted, 1);
    let row = c.wait_signed("2026-03").await;
    assert_eq!(common::registered(&row), 1);
    node.stop().await;
}

/// RFC 6750 and the node's own refusal (`"authorization: Bearer <token>"`)
/// name the scheme: a token sent without it is not a credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_the_bearer_scheme_is_refused() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();
    let mut anonymous = IntakeClient::new(node.remote().channel());
    let answer = anonymous
        .record_cases(with_token(cases_request(), OPERATOR_TOKEN))
        .await;
    let err = answer.expect_err("a token without its scheme refused");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let row = c.row("2026-03").await;
    assert!(!row.pending, "nothing stored: {row:?}");
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_takes_the_roles_its_calls_need() {
    let unit = Unit::new();
    let node = unit.start().await;
    let remote = node.remote();
    let mut c = node.clients();
    c.record_cases(vec![open_case("Q-1", "2026-04-01")]).await;
    let row = c.wait_signed("2026-04").await;
    assert_eq!(row.region, REGION);
    assert_eq!(common::registered(&row), 1);

    // Query: any of the three credentials; none, or an unknown one, is
    // refused.
    let mut query = QueryClient::new(remote.channel());
    for token in [READER_TOKEN, AUDITOR_TOKEN, OPERATOR_TOKEN] {
        let rows = query
            .tally(with_token(tally_request("2026-04"), &bearer(token)))
            .await
            .unwrap_or_else(|e| panic!("{token}: {e:?}"))
            .into_inner()
            .rows;
        assert_eq!(common::registered(&rows[0]), 1, "{token}");
    }
    let err = query
        .tally(tally_request("2026-04"))
        .await
        .expect_err("no credential");
    assert_denied(
        &err,
        Code::Unauthenticated,
        "authorization: a reader, auditor or operator credential required",
    );
    let err = query
        .tally(with_token(tally_request("2026-04"), "Bearer whatever"))
        .await
        .expect_err("unknown credential");
    assert_denied(
        &err,
        Code::Unauthenticated,
        "authorization: unknown or revoked credential",
    );

    // Audit: the auditor only.
    let mut audit = AuditClient::new(remote.channel());
    let revisions = audit
        .revisions(with_token(
            revisions_request("2026-04"),
            &bearer(AUDITOR_TOKEN),
        ))
        .await
        .expect("the auditor reads revisions")
        .into_inner()
        .summaries;
    assert_eq!(revisions.len(), 1);
    let err = audit
        .revisions(revisions_request("2026-04"))
        .await
        .expect_err("no credential");
    assert_denied(
        &err,
        Code::Unauthenticated,
        "authorization: an auditor credential required",
    );
    let err = audit
        .revisions(with_token(
            revisions_request("2026-04"),
            &bearer(READER_TOKEN),
        ))
        .await
        .expect_err("a reader exports no evidence");
    assert_denied(
        &err,
        Code::PermissionDenied,
        "authorization: credential reader has the reader role; this call needs an auditor credential",
    );
    let err = audit
        .revisions(with_token(
            revisions_request("2026-04"),
            &bearer(OPERATOR_TOKEN),
        ))
        .await
        .expect_err("an operator exports no evidence");
    assert_denied(
        &err,
        Code::PermissionDenied,
        "credential operator has the operator role",
    );
    assert_denied(
        &err,
        Code::PermissionDenied,
        "this call needs an auditor credential",
    );

    // Intake: the operator only; a reader's or auditor's call stores nothing.
    let mut intake = IntakeClient::new(remote.channel());
    for (name, token) in [("reader", READER_TOKEN), ("auditor", AUDITOR_TOKEN)] {
        let err = intake
            .record_cases(with_token(
                pb::RecordCasesRequest {
                    cases: vec![open_case(&format!("W-{name}"), "2026-05-02")],
                },
                &bearer(token),
            ))
            .await
            .expect_err("only an operator records");
        assert_denied(
            &err,
            Code::PermissionDenied,
            &format!(
                "authorization: credential {name} has the {name} role; this call needs an operator credential"
            ),
        );
    }
    let row = c.row("2026-05").await;
    assert!(!row.pending, "nothing stored: {row:?}");
    assert_eq!(row.months_missing, ["2026-05"]);

    // Enrolments: the operator only.
    let mut enrolments = EnrolmentsClient::new(remote.channel());
    let err = enrolments
        .list(pb::ListEnrolmentsRequest {})
        .await
        .expect_err("no credential");
    assert_denied(
        &err,
        Code::Unauthenticated,
        "authorization: an operator credential required",
    );
    let err = enrolments
        .list(with_token(
            pb::ListEnrolmentsRequest {},
            &bearer(AUDITOR_TOKEN),
        ))
        .await
        .expect_err("an auditor enrols no one");
    assert_denied(
        &err,
        Code::PermissionDenied,
        "credential auditor has the auditor role; this call needs an operator credential",
    );
    enrolments
        .list(authed(pb::ListEnrolmentsRequest {}))
        .await
        .expect("the operator lists enrolments");

    // Node.Identity needs no credential.
    let found = identity(&remote).await.expect("Node.Identity answers");
    assert_eq!((found.region.as_str(), found.name.as_str()), (REGION, NAME));
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_revoked_in_the_file_stops_working_at_the_next_call() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();
    c.row("2026-04").await;

    // Revoked while the node runs; a new credential added at the same time.
    let file = &unit.config.access.credentials_file;
    let mut credentials = Credentials::load(file).expect("credentials load");
    assert!(credentials.revoke("reader"));
    let token = credentials
        .add("统计科", Role::Reader, "2026-06-01T00:00:00Z")
        .expect("added");
    credentials.save(file).expect("saved");

    let err = c
        .query
        .tally(tally_request("2026-04"))
        .await
        .expect_err("the revoked reader is refused");
    assert_denied(
        &err,
        Code::Unauthenticated,
        "authorization: unknown or revoked credential",
    );
    let mut query = QueryClient::new(node.remote().channel());
    query
        .tally(with_token(tally_request("2026-04"), &bearer(&token)))
        .await
        .expect("the new reader answers without a restart");
    query
        .tally(with_token(tally_request("2026-04"), &bearer(AUDITOR_TOKEN)))
        .await
        .expect("the other credentials keep working");
    // Intake, as the operator, too.
    c.record_cases(vec![open_case("R-1", "2026-04-03")]).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_figures_open_query_but_neither_audit_nor_intake() {
    let unit = Unit::with(|c| c.access.public_figures = true);
    let node = unit.start().await;
    let remote = node.remote();
    let mut c = node.clients();
    c.record_cases(vec![open_case("P-1", "2026-04-01")]).await;
    c.wait_signed("2026-04").await;

    let rows = QueryClient::new(remote.channel())
        .tally(tally_request("2026-04"))
        .await
        .expect("open figures answer without a credential")
        .into_inner()
        .rows;
    assert_eq!(common::registered(&rows[0]), 1);
    // A token presented is still checked.
    let err = QueryClient::new(remote.channel())
        .tally(with_token(tally_request("2026-04"), "Bearer whatever"))
        .await
        .expect_err("an unknown token is refused even so");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    let err = AuditClient::new(remote.channel())
        .revisions(revisions_request("2026-04"))
        .await
        .expect_err("evidence needs an auditor");
    assert_denied(
        &err,
        Code::Unauthenticated,
        "an auditor credential required",
    );
    let err = IntakeClient::new(remote.channel())
        .record_cases(cases_request())
        .await
        .expect_err("intake needs an operator");
    assert_denied(
        &err,
        Code::Unauthenticated,
        "an operator credential required",
    );
    node.stop().await;
}

/// Node.Identity over `endpoint`, connected at once.
async fn identity_over(endpoint: Endpoint) -> Result<pb::IdentityResponse, String> {
    let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
    NodeClient::new(channel)
        .identity(pb::IdentityRequest {})
        .await
        .map(tonic::Response::into_inner)
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_serves_tls_only_with_a_certificate_of_its_own_ca() {
    let unit = Unit::new();
    let node = unit.start().await;
    let remote = node.remote();
    let url = format!("https://{}", node.addr);

    // Its own CA verifies it by address and by the unit's name.
    let found = identity_over(remote.endpoint()).await.expect("verified");
    assert_eq!(found.region, REGION);
    let by_name = Endpoint::from_shared(url.clone())
        .expect("url")
        .tls_config(remote.tls().domain_name(format!("{REGION}.node.tallytree")))
        .expect("tls");
    identity_over(by_name).await.expect("verified by name");

    // Another unit's CA does not.
    let other = Unit::new();
    let foreign = Endpoint::from_shared(url)
        .expect("url")
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(other.ca_pem())))
        .expect("tls");
    let err = identity_over(foreign)
        .await
        .expect_err("a certificate of another CA");
    // Same unit name, so the issuer's name matches; its signature does not.
    assert!(err.contains("InvalidCertificate"), "{err}");

    // Plaintext gets no answer.
    let plain = Endpoint::from_shared(format!("http://{}", node.addr))
        .expect("url")
        .timeout(std::time::Duration::from_secs(5));
    identity_over(plain)
        .await
        .expect_err("no plaintext on a TLS node");

    // And the node still serves its clients.
    let mut c = Clients::new(&remote);
    c.row("2026-04").await;
    node.stop().await;
}
