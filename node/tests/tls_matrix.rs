//! The negative TLS and credential matrix, against a real node (RocksDB,
//! TLS on a real socket): a district with two enrolled streets, each holding
//! the client certificate its enrolment gave it. Every way of speaking for a
//! child that is not that child's current enrolled TLS identity is refused
//! with its reason, every call without the right credential too, and after
//! each refusal the honest child is still served.

mod tls_support;

use tallytree_node::{
    access::Credentials,
    tls::material::{Authority, RequestedKey, TlsKey, node_dns_name},
};
use tallytree_proto::{
    SigningKey,
    pb::{
        self, audit_client::AuditClient, enrolments_client::EnrolmentsClient,
        federation_client::FederationClient, intake_client::IntakeClient,
        query_client::QueryClient,
    },
};
use tls_support::{
    DISTRICT, District, STREET_A, STREET_B, bearer, code, district_config, last_month, now_ms,
};
use tonic::{
    Code, Request, Status,
    transport::{Certificate, ClientTlsConfig, Identity},
};

fn assert_status(result: Result<(), Status>, code: Code, parts: &[&str]) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    for p in parts {
        assert!(
            status.message().contains(p),
            "{p:?} not in {:?}",
            status.message()
        );
    }
}

/// A handshake the node refused, with the TLS alert `alert` (in TLS 1.3
/// the client learns of it at its first read, as a transport error; when
/// its write comes first it sees the closed connection instead, so the
/// alert, if the client saw one, must be this one).
fn assert_handshake_refused(result: Result<(), Status>, alert: &str) {
    let status = result.expect_err("refused");
    let seen = format!("{status:?}");
    let by_transport = std::error::Error::source(&status)
        .is_some_and(|e| e.downcast_ref::<tonic::transport::Error>().is_some());
    assert!(
        by_transport || status.message().starts_with("handshake:"),
        "not refused by the transport: {seen}"
    );
    if seen.contains("alert") {
        assert!(seen.contains(alert), "{alert} not in {seen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_enrolled_child_over_its_own_certificate_may_submit() {
    let district = District::start().await;
    let mut a = district.enrol(STREET_A).await;
    let mut b = district.enrol(STREET_B).await;

    // The honest child.
    district
        .submit(a.identity(), a.next_summary())
        .await
        .expect("A submits as A");

    // A's certificate carrying B's (validly signed) summary.
    assert_status(
        district.submit(a.identity(), b.next_summary()).await,
        Code::PermissionDenied,
        &["TLS peer", "not the TLS key enrolled for 210214002000"],
    );

    // No client certificate at all.
    let summary = a.next_summary();
    let anonymous = FederationClient::new(district.channel().await)
        .submit(pb::SubmitRequest {
            summary: Some(summary),
            ..Default::default()
        })
        .await
        .map(|_| ());
    assert_status(anonymous, Code::Unauthenticated, &["no client certificate"]);

    // A certificate from another CA, even for A's own enrolled key.
    let stranger = Authority::in_memory(code(DISTRICT), "假冒", now_ms()).expect("CA");
    let a_key = RequestedKey::from_csr_pem(&a.tls.csr_pem(a.region, a.name).expect("csr"))
        .expect("request");
    let foreign = stranger
        .issue_child(&a_key, a.region, a.name, now_ms())
        .expect("issued");
    assert_handshake_refused(
        district
            .submit(
                Identity::from_pem(&foreign.cert_pem, a.tls.private_pem()),
                a.next_summary(),
            )
            .await,
        "UnknownCA",
    );

    // The district's own CA, but for a key no enrolment binds.
    let ca = district.authority();
    let other_tls = TlsKey::generate().expect("key");
    let other_key = RequestedKey::from_csr_pem(&other_tls.csr_pem(a.region, a.name).expect("csr"))
        .expect("request");
    let unbound = ca
        .issue_child(&other_key, a.region, a.name, now_ms())
        .expect("issued");
    assert_status(
        district
            .submit(
                Identity::from_pem(&unbound.cert_pem, other_tls.private_pem()),
                a.next_summary(),
            )
            .await,
        Code::PermissionDenied,
        &["not the TLS key enrolled for 210214001000 (serial 1"],
    );

    // An expired certificate for A's enrolled key.
    let expired = ca
        .issue_child_valid(&a_key, a.region, a.name, now_ms(), -30)
        .expect("issued");
    assert_handshake_refused(
        district
            .submit(
                Identity::from_pem(&expired.cert_pem, a.tls.private_pem()),
                a.next_summary(),
            )
            .await,
        "CertificateExpired",
    );

    // B revoked: its certificate no longer speaks for it.
    let mut enrolments = EnrolmentsClient::new(district.channel().await);
    enrolments
        .revoke(bearer(
            pb::RevokeRequest {
                region: b.region.to_string(),
                public_key: b.key.public_key().0.to_vec(),
                reason: "密钥遗失".into(),
                revoked_at_ms: 0,
            },
            &district.operator,
        ))
        .await
        .expect("revoked");
    assert_status(
        district.submit(b.identity(), b.next_summary()).await,
        Code::PermissionDenied,
        &["TLS peer", "210214002000 (serial 1) is revoked"],
    );

    // A rotates: its new enrolment binds a new TLS key; the old
    // certificate is refused from then on, the new one is served.
    let new_key = SigningKey::generate().expect("key").0;
    let new_tls = TlsKey::generate().expect("key");
    let new_cert = district
        .enrol_keys(&a.region.to_string(), a.name, &new_key, &new_tls)
        .await;
    assert_status(
        district.submit(a.identity(), a.next_summary()).await,
        Code::PermissionDenied,
        &["not the TLS key enrolled for 210214001000 (serial 2"],
    );
    a.key = new_key;
    a.tls = new_tls;
    a.cert_pem = new_cert;
    district
        .submit(a.identity(), a.next_summary())
        .await
        .expect("A submits with its rotated keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_trusts_only_its_parent_s_ca_and_name() {
    let district = District::start().await;
    let a = district.enrol(STREET_A).await;

    // Another CA as the child's root: the district's server is not trusted.
    let stranger = Authority::in_memory(code(DISTRICT), "假冒", now_ms()).expect("CA");
    let wrong_root = district
        .endpoint()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(stranger.cert_pem()))
                .identity(a.identity())
                .domain_name(node_dns_name(code(DISTRICT))),
        )
        .expect("tls")
        .connect()
        .await;
    assert!(wrong_root.is_err(), "a server of another CA was trusted");

    // The right CA, but another unit's name: the child would be talking to
    // a sibling's or a stranger's node, not its parent.
    let wrong_name = district
        .endpoint()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&district.ca_pem))
                .identity(a.identity())
                .domain_name(node_dns_name(code("210213000000"))),
        )
        .expect("tls")
        .connect()
        .await;
    assert!(
        wrong_name.is_err(),
        "a server with another unit's name was trusted"
    );

    district
        .child_channel(a.identity())
        .await
        .expect("the parent's CA and name are trusted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_needs_the_credential_of_its_role() {
    let district = District::start().await;
    let channel = district.channel().await;
    let query = pb::TallyRequest {
        region: String::new(),
        period: last_month().to_string(),
        depth: 0,
    };
    let cases = pb::RecordCasesRequest {
        cases: vec![pb::Case {
            id: "TLS-1".into(),
            category: pb::Category::Neighbour as i32,
            registered_on: last_month().first_day().to_string(),
            state: pb::CaseState::InProgress as i32,
            closed_on: String::new(),
            deadline: String::new(),
        }],
    };
    let export = pb::ExportEvidenceRequest {
        region: String::new(),
        period: last_month().to_string(),
    };
    let mut q = QueryClient::new(channel.clone());
    let mut intake = IntakeClient::new(channel.clone());
    let mut audit = AuditClient::new(channel.clone());

    // No token, a wrong one, a token without its scheme.
    let err = q
        .tally(Request::new(query.clone()))
        .await
        .expect_err("no token");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(
        err.message()
            .contains("reader, auditor or operator credential required")
    );
    let err = q
        .tally(bearer(query.clone(), "tt_not-a-credential"))
        .await
        .expect_err("wrong token");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().contains("unknown or revoked credential"),
        "{err:?}"
    );
    let mut bare = Request::new(query.clone());
    bare.metadata_mut()
        .insert("authorization", district.reader.parse().expect("ascii"));
    assert_eq!(
        q.tally(bare).await.expect_err("bare").code(),
        Code::Unauthenticated
    );

    // A reader reads, and may not write or export evidence.
    q.tally(bearer(query.clone(), &district.reader))
        .await
        .expect("a reader queries");
    let err = intake
        .record_cases(bearer(cases.clone(), &district.reader))
        .await
        .expect_err("a reader records");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message()
            .contains("省厅统计科 has the reader role; this call needs an operator credential"),
        "{err:?}"
    );
    let err = match audit
        .export_evidence(bearer(export.clone(), &district.reader))
        .await
    {
        Ok(_) => panic!("a reader exported evidence"),
        Err(e) => e,
    };
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("needs an auditor credential"),
        "{err:?}"
    );

    // An auditor exports; an operator records and may not export.
    assert!(
        audit
            .export_evidence(bearer(export.clone(), &district.auditor))
            .await
            .is_ok()
    );
    intake
        .record_cases(bearer(cases.clone(), &district.operator))
        .await
        .expect("the operator records");
    assert_eq!(
        audit
            .export_evidence(bearer(export, &district.operator))
            .await
            .err()
            .map(|e| e.code()),
        Some(Code::PermissionDenied)
    );
    let err = EnrolmentsClient::new(channel.clone())
        .list(bearer(pb::ListEnrolmentsRequest {}, &district.auditor))
        .await
        .expect_err("an auditor enrols");
    assert_eq!(err.code(), Code::PermissionDenied);

    // A credential revoked in the file stops working at the next call, the
    // node not restarted.
    let file = district_config(district.dir.path()).access.credentials_file;
    let mut creds = Credentials::load(&file).expect("load");
    assert!(creds.revoke("省厅统计科"));
    creds.save(&file).expect("save");
    let err = q
        .tally(bearer(query.clone(), &district.reader))
        .await
        .expect_err("revoked reader");
    assert_eq!(err.code(), Code::Unauthenticated);
    q.tally(bearer(query, &district.auditor))
        .await
        .expect("the others still work");
}
