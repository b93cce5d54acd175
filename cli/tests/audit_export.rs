//! `tallytree audit export` checks the node's stream against the trailer the
//! node sends: a stream cut short or altered on the way is refused (exit 2)
//! and no file is left behind. A real node never sends one, so a stand-in
//! Audit service serves the streams: a valid one, then broken copies.

mod common;

use std::{net::SocketAddr, path::Path, pin::Pin, process::Output};

use common::{show, tallytree};
use tallytree_aggregator::bundle::{BundleReader, TrailerDigest};
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
use tonic::{Request, Response, Status};

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

/// Serves the stand-in on 127.0.0.1:0 for as long as the runtime lives.
fn serve(runtime: &tokio::runtime::Runtime) -> SocketAddr {
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(AuditServer::new(StandIn))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        addr
    })
}

fn export(addr: SocketAddr, scenario: &str, format: &str, out: &Path) -> Output {
    tallytree()
        .args(["--node", &format!("http://{addr}"), "audit", "export"])
        .args(["--period", scenario, "--format", format, "-o"])
        .arg(out)
        .output()
        .expect("tallytree runs")
}

#[test]
fn a_truncated_or_altered_export_is_refused_and_not_kept() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let addr = serve(&runtime);
    let dir = tempfile::tempdir().expect("tempdir");

    // The intact stream is kept, and reads back whole.
    let file = dir.path().join("intact.bundle");
    let out = export(addr, "intact", "bundle", &file);
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
            let out = export(addr, scenario, format, &file);
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
    let out = tallytree()
        .args(["--node", &format!("http://{addr}"), "audit", "prove"])
        .args(["--region", "210214000000", "--period", "truncated", "-o"])
        .arg(&file)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(!file.exists());
}
