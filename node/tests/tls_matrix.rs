//! The negative TLS and credential matrix, against a real node (RocksDB,
//! TLS on a real socket): a district with two enrolled streets, each holding
//! the client certificate its enrolment gave it. Every way of speaking for a
//! child that is not that child's current enrolled TLS identity is refused
//! with its reason, every call without the right credential too, and after
//! each refusal the honest child is still served.

use std::{net::SocketAddr, path::Path, time::Duration};

use tallytree_aggregator::{SummaryView, Tally};
use tallytree_node::{
    Node,
    access::{Credentials, Role},
    config::Config,
    tls::material::{Authority, RequestedKey, TlsFiles, TlsKey, node_dns_name},
};
use tallytree_proto::{
    Category, Month, RegionCode, SigningKey,
    pb::{
        self, audit_client::AuditClient, enrolments_client::EnrolmentsClient,
        federation_client::FederationClient, intake_client::IntakeClient,
        query_client::QueryClient,
    },
    statement,
};
use tonic::{
    Code, Request, Status,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

const DISTRICT: &str = "210214000000";
const STREET_A: (&str, &str) = ("210214001000", "铁西街道");
const STREET_B: (&str, &str) = ("210214002000", "城子坦街道");

fn code(s: &str) -> RegionCode {
    RegionCode::parse(s).expect("code")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A child as the test holds it: its signing key, TLS key and certificate.
struct Street {
    region: RegionCode,
    name: &'static str,
    key: SigningKey,
    tls: TlsKey,
    cert_pem: String,
    revision: u64,
}

impl Street {
    /// A fresh signed summary of this street for last month.
    fn next_summary(&mut self) -> pb::Envelope {
        self.revision += 1;
        let mut local = Tally::default();
        let c = local.category_mut(Category::Neighbour);
        c.registered = self.revision + 2;
        c.resolved = 1;
        c.resolved_on_time = 1;
        c.in_progress = self.revision + 1;
        let view = SummaryView {
            region: self.region,
            name: self.name.into(),
            parent: self.region.parent(),
            period: last_month(),
            revision: self.revision,
            issued_at_ms: now_ms(),
            local,
            total: local,
            children: Vec::new(),
            children_expected: 0,
        };
        statement::seal(&self.key, &view.to_pb()).envelope
    }

    fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, self.tls.private_pem())
    }
}

/// A month well in the past in any time zone.
fn last_month() -> Month {
    let today = chrono::Utc::now().date_naive();
    let back = today - chrono::Days::new(40);
    Month::of(back).expect("month")
}

/// The district node and what the test knows of it.
struct District {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    ca_pem: String,
    operator: String,
    reader: String,
    auditor: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl District {
    async fn start() -> District {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = district_config(dir.path());
        TlsFiles {
            key: config.tls.key_file.clone(),
            ca_key: config.tls.ca_key_file.clone(),
            ca_cert: config.tls.ca_file.clone(),
        }
        .create(config.region, &config.name, now_ms())
        .expect("TLS material");
        SigningKey::generate_to_file(&config.key_file).expect("key");
        let mut creds = Credentials::default();
        let operator = creds.add("值班员", Role::Operator, "").expect("add");
        let reader = creds.add("省厅统计科", Role::Reader, "").expect("add");
        let auditor = creds.add("审计组", Role::Auditor, "").expect("add");
        creds.save(&config.access.credentials_file).expect("save");
        let ca_pem = std::fs::read_to_string(&config.tls.ca_file).expect("ca.pem");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let node = Node::open(config).expect("node opens");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(node.run(listener, async {
            let _ = stopped.await;
        }));
        District {
            dir,
            addr,
            ca_pem,
            operator,
            reader,
            auditor,
            stop: Some(stop),
        }
    }

    /// The district's CA, as its operator holds it on disk.
    fn authority(&self) -> Authority {
        let c = district_config(self.dir.path());
        Authority::load(&c.tls.ca_key_file, &c.tls.ca_file).expect("CA loads")
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::from_shared(format!("https://{}", self.addr))
            .expect("url")
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
    }

    /// A channel verifying the district by its CA, without a client
    /// certificate (operators, readers).
    async fn channel(&self) -> Channel {
        self.endpoint()
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem)))
            .expect("tls")
            .connect()
            .await
            .expect("connects")
    }

    /// A channel as a child: with `identity`, verifying the district by its
    /// CA and its code, as the pusher does. Err when the handshake fails.
    async fn child_channel(&self, identity: Identity) -> Result<Channel, tonic::transport::Error> {
        self.endpoint()
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(&self.ca_pem))
                    .identity(identity)
                    .domain_name(node_dns_name(code(DISTRICT))),
            )
            .expect("tls")
            .connect()
            .await
    }

    async fn submit(&self, identity: Identity, summary: pb::Envelope) -> Result<(), Status> {
        let channel = self
            .child_channel(identity)
            .await
            .map_err(|e| Status::unavailable(format!("handshake: {e:?}")))?;
        FederationClient::new(channel)
            .submit(pb::SubmitRequest {
                summary: Some(summary),
                ..Default::default()
            })
            .await
            .map(|_| ())
    }

    /// Enrols a street over TLS with the operator token; the street's
    /// certificate comes back with the enrolment.
    async fn enrol(&self, (region, name): (&str, &'static str)) -> Street {
        let key = SigningKey::generate().expect("key").0;
        let tls = TlsKey::generate().expect("TLS key");
        let cert_pem = self.enrol_keys(region, name, &key, &tls).await;
        Street {
            region: code(region),
            name,
            key,
            tls,
            cert_pem,
            revision: 0,
        }
    }

    async fn enrol_keys(&self, region: &str, name: &str, key: &SigningKey, tls: &TlsKey) -> String {
        let mut client = EnrolmentsClient::new(self.channel().await);
        let response = client
            .enrol(bearer(
                pb::EnrolRequest {
                    region: region.into(),
                    name: name.into(),
                    public_key: key.public_key().0.to_vec(),
                    tls_csr: tls.csr_pem(code(region), name).expect("csr"),
                },
                &self.operator,
            ))
            .await
            .expect("enrolled")
            .into_inner();
        assert_eq!(response.parent_ca_certificate, self.ca_pem);
        response.client_certificate
    }
}

impl Drop for District {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn district_config(dir: &Path) -> Config {
    let mut config = Config {
        region: code(DISTRICT),
        name: "普兰店区".into(),
        data_dir: dir.join("data"),
        key_file: dir.join("node.key"),
        listen: ([127, 0, 0, 1], 0).into(),
        log: "warn".into(),
        ..Config::example()
    };
    config.parent.address = None;
    config.tls.key_file = dir.join("tls.key");
    config.tls.ca_key_file = dir.join("ca.key");
    config.tls.ca_file = dir.join("ca.pem");
    config.access.credentials_file = dir.join("credentials.toml");
    config
}

fn bearer<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    req
}

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
    assert!(
        status.message() == "transport error" || status.message().starts_with("handshake:"),
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
            .contains("省厅统计科 is a reader credential; this call needs an operator credential"),
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
