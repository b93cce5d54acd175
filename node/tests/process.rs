//! The node as a supervised process: with `listen = "127.0.0.1:0"` it binds
//! a port of its own, reports it in `<data_dir>/listen.addr` and its log,
//! answers `Node.Identity` as its unit, and stops cleanly on SIGHUP or, when
//! asked to watch it, at the end of its standard input; its address report
//! goes with it.

mod common;

use std::{process::Stdio, time::Duration};

use common::{NAME, REGION, Unit, identity};

/// How long a stop may take (signing what is pending takes milliseconds).
const STOP_WITHIN: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_port_zero_reports_the_address_it_bound_and_answers_as_its_unit() {
    let (a, b) = (Unit::with(|c| c.log = "info".into()), Unit::new());
    let (node_a, node_b) = (a.spawn_binary().await, b.spawn_binary().await);
    assert_ne!(node_a.addr().port(), 0);
    assert_ne!(node_a.addr(), node_b.addr(), "two nodes, two ports");

    let file = a.config.address_file();
    let text = std::fs::read_to_string(file.path()).expect("listen.addr written");
    assert_eq!(text.trim(), node_a.addr().to_string());
    let log = node_a.log();
    assert!(
        log.contains("listening") && log.contains(&node_a.addr().to_string()),
        "the log names the address:\n{log}"
    );

    let found = identity(&node_a.remote())
        .await
        .expect("Node.Identity answers");
    assert_eq!(found.region, REGION);
    assert_eq!(found.name, NAME);
    assert_eq!(found.key_id, a.public_key().key_id());
    assert_eq!(found.public_key, a.public_key().0.to_vec());
    let other = identity(&node_b.remote())
        .await
        .expect("Node.Identity answers");
    assert_ne!(
        other.key_id, found.key_id,
        "each unit answers with its own key"
    );

    node_a.signal("TERM");
    let (status, log) = node_a.wait_exit(STOP_WITHIN).await;
    assert!(status.success(), "{log}");
    assert!(!file.path().exists(), "the report goes with the node");
    node_b.signal("TERM");
    let (status, log) = node_b.wait_exit(STOP_WITHIN).await;
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_stops_the_node_cleanly() {
    let unit = Unit::with(|c| c.log = "info".into());
    let node = unit.spawn_binary().await;
    node.signal("HUP");
    let (status, log) = node.wait_exit(STOP_WITHIN).await;
    assert!(status.success(), "exit {status} after SIGHUP:\n{log}");
    assert!(
        log.contains("SIGHUP") && log.contains("node stopped"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_watching_stdin_stops_cleanly_when_its_supervisor_closes_it() {
    let unit = Unit::with(|c| c.log = "info".into());
    let mut node = unit
        .spawn_binary_with(&["--stop-when-stdin-closes"], Stdio::piped())
        .await;
    let stdin = node.take_stdin().expect("stdin piped");
    // Still serving while the pipe is open.
    assert!(identity(&node.remote()).await.is_some());
    drop(stdin);
    let (status, log) = node.wait_exit(STOP_WITHIN).await;
    assert!(status.success(), "exit {status}:\n{log}");
    assert!(
        log.contains("standard input closed") && log.contains("node stopped"),
        "{log}"
    );
    assert!(!unit.config.address_file().path().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_an_empty_stdin_does_not_stop_the_node() {
    // `spawn_binary` gives the node /dev/null, which ends at once.
    let node = Unit::new().spawn_binary().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(identity(&node.remote()).await.is_some(), "still serving");
    node.signal("TERM");
    let (status, log) = node.wait_exit(STOP_WITHIN).await;
    assert!(status.success(), "{log}");
}
