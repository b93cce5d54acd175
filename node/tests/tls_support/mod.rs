//! A district node served over TLS with real RocksDB and credentials, and
//! streets whose keys and certificates the test holds: what the TLS matrix
//! and the flood test share.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::{net::SocketAddr, path::Path, time::Duration};

use tallytree_aggregator::{SummaryView, Tally};
use tallytree_node::{
    Node,
    access::{Credentials, Role},
    config::Config,
    tls::material::{Authority, TlsFiles, TlsKey, node_dns_name},
};
use tallytree_proto::{
    Category, Month, RegionCode, SigningKey,
    pb::{self, enrolments_client::EnrolmentsClient, federation_client::FederationClient},
    statement,
};
use tonic::{
    Request, Status,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

pub(crate) const DISTRICT: &str = "210214000000";
pub(crate) const STREET_A: (&str, &str) = ("210214001000", "铁西街道");
pub(crate) const STREET_B: (&str, &str) = ("210214002000", "城子坦街道");

pub(crate) fn code(s: &str) -> RegionCode {
    RegionCode::parse(s).expect("code")
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A child as the test holds it: its signing key, TLS key and certificate.
pub(crate) struct Street {
    pub(crate) region: RegionCode,
    pub(crate) name: &'static str,
    pub(crate) key: SigningKey,
    pub(crate) tls: TlsKey,
    pub(crate) cert_pem: String,
    pub(crate) revision: u64,
}

impl Street {
    /// A fresh signed summary of this street for last month.
    pub(crate) fn next_summary(&mut self) -> pb::Envelope {
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

    pub(crate) fn identity(&self) -> Identity {
        Identity::from_pem(&self.cert_pem, self.tls.private_pem())
    }
}

/// A month well in the past in any time zone.
pub(crate) fn last_month() -> Month {
    let today = chrono::Utc::now().date_naive();
    let back = today - chrono::Days::new(40);
    Month::of(back).expect("month")
}

/// The district node and what the test knows of it.
pub(crate) struct District {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) addr: SocketAddr,
    pub(crate) ca_pem: String,
    pub(crate) operator: String,
    pub(crate) reader: String,
    pub(crate) auditor: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl District {
    pub(crate) async fn start() -> District {
        District::start_with(|_| {}).await
    }

    /// A district whose config `adjust` changes.
    pub(crate) async fn start_with(adjust: impl FnOnce(&mut Config)) -> District {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = district_config(dir.path());
        adjust(&mut config);
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
    pub(crate) fn authority(&self) -> Authority {
        let c = district_config(self.dir.path());
        Authority::load(&c.tls.ca_key_file, &c.tls.ca_file).expect("CA loads")
    }

    pub(crate) fn endpoint(&self) -> Endpoint {
        Endpoint::from_shared(format!("https://{}", self.addr))
            .expect("url")
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
    }

    /// A channel verifying the district by its CA, without a client
    /// certificate (operators, readers).
    pub(crate) async fn channel(&self) -> Channel {
        self.endpoint()
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem)))
            .expect("tls")
            .connect()
            .await
            .expect("connects")
    }

    /// A channel as a child: with `identity`, verifying the district by its
    /// CA and its code, as the pusher does. Err when the handshake fails.
    pub(crate) async fn child_channel(
        &self,
        identity: Identity,
    ) -> Result<Channel, tonic::transport::Error> {
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

    pub(crate) async fn submit(
        &self,
        identity: Identity,
        summary: pb::Envelope,
    ) -> Result<(), Status> {
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
    pub(crate) async fn enrol(&self, (region, name): (&str, &'static str)) -> Street {
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

    pub(crate) async fn enrol_keys(
        &self,
        region: &str,
        name: &str,
        key: &SigningKey,
        tls: &TlsKey,
    ) -> String {
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

pub(crate) fn district_config(dir: &Path) -> Config {
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

pub(crate) fn bearer<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    req
}
