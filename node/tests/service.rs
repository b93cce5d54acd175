//! The node as a service: gRPC health and reflection work out of the box
//! over TLS and without a credential (grpc_health_probe, grpcurl), the
//! binary prints a usable default config, and SIGTERM or SIGINT stop it
//! cleanly with everything pending signed.

mod common;

use std::time::Duration;

use common::{REGION, Unit, chunk, import_rows, open_cases, registered};
use tallytree_node::{
    config::{Config, SignerConfig},
    store::{RocksStore, layout},
};
use tallytree_proto::{Month, RegionCode};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

const SERVICES: [&str; 3] = [
    "tallytree.v1.Intake",
    "tallytree.v1.Query",
    "tallytree.v1.Audit",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_every_service_serving() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut health = HealthClient::new(node.remote().channel());
    for service in [""].into_iter().chain(SERVICES) {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("health answers")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }
    let err = health
        .check(HealthCheckRequest {
            service: "tallytree.v1.Nothing".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(err.code(), Code::NotFound);
    node.stop().await;
}

/// Sends one reflection request and returns its answer.
async fn reflect(
    client: &mut ServerReflectionClient<tonic::transport::Channel>,
    request: MessageRequest,
) -> MessageResponse {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection answers")
        .into_inner();
    answers
        .message()
        .await
        .expect("reflection stream")
        .expect("one answer")
        .message_response
        .expect("a response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_and_describes_the_tallytree_services() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut client = ServerReflectionClient::new(node.remote().channel());

    let MessageResponse::ListServicesResponse(list) =
        reflect(&mut client, MessageRequest::ListServices(String::new())).await
    else {
        panic!("not a service list");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in SERVICES.into_iter().chain(["grpc.health.v1.Health"]) {
        assert!(names.contains(&service), "{service} not in {names:?}");
    }

    // grpcurl describes a service from the file that defines it.
    for (symbol, file) in [
        ("tallytree.v1.Intake", "tallytree/v1/intake.proto"),
        ("tallytree.v1.Query", "tallytree/v1/query.proto"),
        ("tallytree.v1.Audit", "tallytree/v1/audit.proto"),
        ("tallytree.v1.Summary", "tallytree/v1/statements.proto"),
    ] {
        let MessageResponse::FileDescriptorResponse(files) = reflect(
            &mut client,
            MessageRequest::FileContainingSymbol(symbol.into()),
        )
        .await
        else {
            panic!("{symbol}: no file descriptor");
        };
        let found = files
            .file_descriptor_proto
            .iter()
            .any(|f| f.windows(file.len()).any(|w| w == file.as_bytes()));
        assert!(found, "{symbol}: {file} not among the descriptors");
    }
    node.stop().await;
}

/// grpcio's Python reflection, Postman, older grpcurl and grpc_cli speak
/// reflection v1alpha: they list and describe the same services.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1alpha_lists_and_describes_the_services_too() {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let unit = Unit::new();
    let node = unit.start().await;
    let mut client = ServerReflectionClient::new(node.remote().channel());
    let ask = |request| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "tallytree.v1.Federation".into(),
        )),
    ];
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .expect("v1alpha reflection answers")
        .into_inner();
    let mut next = async || {
        answers
            .message()
            .await
            .expect("reflection stream")
            .expect("an answer")
            .message_response
            .expect("a response")
    };
    let MessageResponse::ListServicesResponse(list) = next().await else {
        panic!("not a service list");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for service in SERVICES.into_iter().chain([
        "tallytree.v1.Federation",
        "tallytree.v1.Enrolments",
        "grpc.health.v1.Health",
    ]) {
        assert!(names.contains(&service), "{service} not in {names:?}");
    }
    let MessageResponse::FileDescriptorResponse(files) = next().await else {
        panic!("tallytree.v1.Federation: no file descriptor");
    };
    let file = "tallytree/v1/federation.proto";
    assert!(
        files
            .file_descriptor_proto
            .iter()
            .any(|f| f.windows(file.len()).any(|w| w == file.as_bytes())),
        "{file} not among the descriptors"
    );
    node.stop().await;
}

#[test]
fn the_default_config_printed_by_the_binary_loads() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tallytree-node"))
        .arg("--print-default-config")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let config = Config::parse(&text, "default.toml", std::path::Path::new("/srv"), |_| {
        None
    })
    .expect("the printed default parses");
    assert_eq!(config.region.to_string(), REGION);
    assert!(config.data_dir.starts_with("/srv"));
}

/// How long a stop may take. A stop signs what is pending, which takes
/// milliseconds; it must not wait out the signer's debounce window.
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// Starts the binary with `signer`, imports, sends `signal` at once, and
/// checks a prompt, clean exit that left the import signed.
async fn stops_cleanly_on(signal: &str, signer: SignerConfig) {
    let unit = Unit::with(|c| {
        c.signer = signer;
        c.log = "info".into();
    });
    let node = unit.spawn_binary().await;
    let mut c = node.clients();
    let out = c
        .import(vec![chunk(import_rows(
            2,
            open_cases("SIG", 250, "2026-10-02"),
        ))])
        .await
        .expect("import");
    assert_eq!(out.accepted, 250);

    node.signal(signal);
    let (status, log) = node.wait_exit(STOP_WITHIN).await;
    assert!(status.success(), "exit {status} after SIG{signal}:\n{log}");
    assert!(log.contains("node stopped"), "{log}");

    // Nothing is left unsigned: no month marked, and the revision is in the
    // store (read directly, the node being down).
    {
        let store = RocksStore::open(&unit.config.data_dir).expect("store opens");
        assert_eq!(layout::dirty_months(&store).expect("dirty"), []);
        let month = Month::parse("2026-10").expect("month");
        let region = RegionCode::parse(REGION).expect("region");
        let latest = layout::latest_summary(&store, region, month)
            .expect("read")
            .expect("signed by the time the node stopped");
        let view = latest.view().expect("summary");
        assert_eq!(view.revision, 1);
        assert_eq!(view.local.case_totals().registered, 250);
    }

    // And the node comes back with it.
    let node = unit.spawn_binary().await;
    let mut c = node.clients();
    let row = c.row("2026-10").await;
    assert!(!row.pending);
    assert_eq!(registered(&row), 250);
    assert_eq!(row.months[0].revision, 1);
    node.signal("TERM");
    let (status, log) = node.wait_exit(STOP_WITHIN).await;
    assert!(status.success(), "{log}");
}

/// A signer that is still in its quiet spell when the signal arrives.
fn settling_signer() -> SignerConfig {
    SignerConfig {
        debounce_ms: 300,
        max_delay_ms: 1_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_binary_cleanly_with_everything_signed() {
    stops_cleanly_on("TERM", settling_signer()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_the_binary_cleanly_with_everything_signed() {
    stops_cleanly_on("INT", settling_signer()).await;
}

/// A stop must not wait for the signer's debounce window to close: with a
/// minute-long window the node should still stop (and sign) at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_does_not_wait_out_the_signer_debounce() {
    stops_cleanly_on(
        "TERM",
        SignerConfig {
            debounce_ms: 60_000,
            max_delay_ms: 60_000,
        },
    )
    .await;
}
