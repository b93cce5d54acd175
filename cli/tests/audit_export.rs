//! `tallytree audit export` checks the node's stream against the trailer the
//! node sends: a stream cut short or altered on the way is refused (exit 2)
//! and no file is left behind. A real node never sends one, so a stand-in
//! Audit service serves the streams: a valid one, then broken copies. The
//! stand-in is served as a node serves Audit: TLS by the unit's CA (the
//! node's own server configuration and accept loop, the files made by
//! `tallytree init`), every call checked against the unit's credentials by
//! the node's guard; the CLI calls it with the unit's `ca.pem` and an
//! auditor's token.

mod common;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    pin::Pin,
    process::{Command, Output},
    sync::Arc,
    time::Duration,
};

use common::{show, tallytree};
use tallytree_aggregator::bundle::{BundleReader, TrailerDigest};
use tallytree_node::{
    access::{Access, Action},
    clock::Clock,
    config::Config,
    grpc::Guard,
    tls::{
        material::Authority,
        server::{HandshakeLimits, incoming, server_config},
    },
};
use tallytree_proto::{
    SigningKey,
    pb::{
        self,
        audit_server::{Audit, AuditServer},
        evidence_item::Item,
    },
    statement,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, service::interceptor::InterceptedService};

/// A header and a signed summary, then the trailer over them.
fn valid_stream() -> Vec<pb::EvidenceItem> {
    let (key, _) = SigningKey::generate().expect("key");
    let summary = pb::Summary {
        region: "210214000000".into(),
        name: "普兰店区".into(),
        parent: "210200000000".into(),
        period: "2026-03".into(),
        revision: 1,
        ..Default::default()
    };
    let mut items = vec![
        pb::EvidenceItem {
            item: Some(Item::Header(pb::EvidenceHeader {
                format: "tallytree-evidence-v1".into(),
                region: "210214000000".into(),
                period: "2026-03".into(),
                exported_by: "210214000000".into(),
                ..Default::default()
            })),
        },
        pb::EvidenceItem {
            item: Some(Item::Summary(statement::seal(&key, &summary).envelope)),
        },
    ];
    let mut digest = TrailerDigest::default();
    for item in &items {
        digest.add(item);
    }
    items.push(pb::EvidenceItem {
        item: Some(Item::Trailer(digest.trailer())),
    });
    items
}

/// The stream for a scenario, named by the period the CLI asks for.
fn stream_for(scenario: &str) -> Vec<pb::EvidenceItem> {
    let mut items = valid_stream();
    match scenario {
        "intact" => {}
        // The connection dropped before the trailer.
        "truncated" => {
            items.pop();
        }
        // A figure changed on the way, after the node digested it.
        "altered" => {
            if let Some(Item::Summary(env)) = &mut items[1].item {
                env.payload[3] ^= 1;
            }
        }
        // An item left out on the way; the trailer still counts it.
        "dropped" => {
            items.remove(1);
        }
        _ => panic!("no scenario {scenario}"),
    }
    items
}

/// The stand-in Audit service.
struct StandIn;

type Items = Pin<Box<dyn Stream<Item = Result<pb::EvidenceItem, Status>> + Send>>;

#[tonic::async_trait]
impl Audit for StandIn {
    async fn revisions(
        &self,
        _: Request<pb::RevisionsRequest>,
    ) -> Result<Response<pb::RevisionsResponse>, Status> {
        Err(Status::unimplemented("stand-in"))
    }

    type ExportEvidenceStream = Items;

    async fn export_evidence(
        &self,
        request: Request<pb::ExportEvidenceRequest>,
    ) -> Result<Response<Items>, Status> {
        let items = stream_for(&request.into_inner().period);
        Ok(Response::new(Box::pin(tokio_stream::iter(
            items.into_iter().map(Ok),
        ))))
    }

    type ProveStream = Items;

    async fn prove(&self, request: Request<pb::ProveRequest>) -> Result<Response<Items>, Status> {
        let items = stream_for(&request.into_inner().period);
        Ok(Response::new(Box::pin(tokio_stream::iter(
            items.into_iter().map(Ok),
        ))))
    }
}

/// A unit's files made by `tallytree init` (never started as a node), and
/// an auditor's token made by `tallytree token add`.
struct UnitFiles {
    /// Holds the unit's directory.
    _dir: tempfile::TempDir,
    /// Its node.toml.
    config: PathBuf,
    /// Its CA certificate.
    ca_file: PathBuf,
    /// The auditor's token.
    auditor: String,
}

fn unit_files() -> UnitFiles {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = dir.path().join("unit");
    let out = tallytree()
        .args(["init", "--code", "210214000000", "--name", "普兰店区"])
        .args(["--listen", "127.0.0.1:0", "--dir"])
        .arg(&unit)
        .output()
        .expect("init runs");
    assert!(out.status.success(), "init: {}", show(&out));
    let config = unit.join("node.toml");
    let out = tallytree()
        .arg("--config")
        .arg(&config)
        .args(["token", "add", "--role", "auditor", "--name", "审计处"])
        .output()
        .expect("token add runs");
    assert!(out.status.success(), "token add: {}", show(&out));
    let auditor = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    UnitFiles {
        _dir: dir,
        config,
        ca_file: unit.join("ca.pem"),
        auditor,
    }
}

/// Serves the stand-in on 127.0.0.1:0 for as long as the runtime lives,
/// over TLS by the unit's CA, its calls guarded by the unit's credentials.
fn serve(runtime: &tokio::runtime::Runtime, unit: &UnitFiles) -> SocketAddr {
    let config = Config::load(&unit.config).expect("config");
    let ca = Arc::new(Authority::load(&config.tls.ca_key_file, &config.tls.ca_file).expect("CA"));
    let access = Arc::new(Access::open(&config.access).expect("credentials"));
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let tls = server_config(
            ca,
            config.region,
            Vec::new(),
            Clock::new(config.utc_offset_hours),
        )
        .expect("TLS server configuration");
        let limits = HandshakeLimits {
            timeout: Duration::from_millis(config.tls.handshake_timeout_ms),
            concurrent: config.tls.max_handshakes,
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(InterceptedService::new(
                    AuditServer::new(StandIn),
                    Guard::new(access, Action::Audit),
                ))
                .serve_with_incoming(incoming(listener, tls, limits)),
        );
        addr
    })
}

/// `tallytree --node https://ADDR --ca-file ca.pem --token AUDITOR ARGS...`.
fn at(addr: SocketAddr, unit: &UnitFiles) -> Command {
    let mut cmd = tallytree();
    cmd.args([
        "--node",
        &format!("https://{addr}"),
        "--token",
        &unit.auditor,
    ])
    .arg("--ca-file")
    .arg(&unit.ca_file);
    cmd
}

fn export(addr: SocketAddr, unit: &UnitFiles, scenario: &str, format: &str, out: &Path) -> Output {
    at(addr, unit)
        .args(["audit", "export"])
        .args(["--period", scenario, "--format", format, "-o"])
        .arg(out)
        .output()
        .expect("tallytree runs")
}

#[test]
fn a_truncated_or_altered_export_is_refused_and_not_kept() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let unit = unit_files();
    let addr = serve(&runtime, &unit);
    let dir = tempfile::tempdir().expect("tempdir");

    // The intact stream is kept, and reads back whole.
    let file = dir.path().join("intact.bundle");
    let out = export(addr, &unit, "intact", "bundle", &file);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let bytes = std::fs::read(&file).expect("kept");
    let items: Vec<_> = BundleReader::new(bytes.as_slice())
        .collect::<Result<_, _>>()
        .expect("a complete bundle");
    assert_eq!(items.len(), 2);

    for (scenario, says) in [
        (
            "truncated",
            "the node's stream ended after 2 items, before its trailer (truncated)",
        ),
        (
            "altered",
            "the node's stream does not match its bundle trailer: digest does not match the items",
        ),
        (
            "dropped",
            "the node's stream does not match its bundle trailer: states 2 items, but 1 precede it",
        ),
    ] {
        for format in ["bundle", "dsse-json"] {
            let file = dir.path().join(format!("{scenario}.{format}"));
            let out = export(addr, &unit, scenario, format, &file);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{scenario} {format}: {}",
                show(&out)
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(says) && err.contains("export incomplete; nothing kept"),
                "{scenario} {format}: {err}"
            );
            assert!(
                !file.exists(),
                "{scenario} {format}: a broken export was kept"
            );
        }
    }

    // An inclusion proof is checked the same way.
    let file = dir.path().join("truncated.proof");
    let out = at(addr, &unit)
        .args(["audit", "prove"])
        .args(["--region", "210214000000", "--period", "truncated", "-o"])
        .arg(&file)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(!file.exists());
}
