//! What the node's integration tests share: a unit (signing key, TLS key and
//! CA, credentials, config and data directory in a temporary directory),
//! the node run in-process or as the real `tallytree-node` binary, both
//! serving TLS, gRPC clients that verify the node by the unit's CA and
//! present the credential each service needs, and records to send.

// Each test file uses a different part of this module.
#![allow(dead_code)]

#[path = "../serving/mod.rs"]
mod serving;

pub(crate) use serving::{AUDITOR_TOKEN, Authed, OPERATOR_TOKEN, READER_TOKEN, Remote, Running};

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    time::Duration,
};

use chrono::{Days, NaiveDate, Utc};
use tallytree_node::{
    Node,
    config::{AddressFile, Config, SignerConfig},
};
use tallytree_proto::{
    Month, PublicKey, SigningKey,
    pb::{
        self, audit_client::AuditClient, intake_client::IntakeClient, node_client::NodeClient,
        query_client::QueryClient,
    },
};
use tempfile::TempDir;
use tonic::Request;

/// The unit of `Config::example()`: 普兰店区, a district.
pub(crate) const REGION: &str = "210214000000";
/// Its Chinese name.
pub(crate) const NAME: &str = "普兰店区";
/// Longest any test waits for something to happen (start, signing, exit).
pub(crate) const WAIT: Duration = Duration::from_secs(30);
/// Pause between two looks while polling.
const POLL: Duration = Duration::from_millis(10);
/// Payload type of signed summaries.
pub(crate) const SUMMARY_TYPE: &str = "application/vnd.tallytree.summary.v1+protobuf";

/// A unit's files: its signing key, its TLS key and CA, its credentials
/// (operator, reader and auditor, with the fixed test tokens), its config
/// and its data directory, all inside one temporary directory that lives as
/// long as the unit.
pub(crate) struct Unit {
    /// Holds keys, CA, credentials, config file, data and logs; removed on
    /// drop.
    pub(crate) dir: TempDir,
    /// The configuration the node runs with (listen port 0: in-process).
    pub(crate) config: Config,
}

impl Unit {
    /// A unit with the test defaults: fast signer, the test credentials.
    pub(crate) fn new() -> Unit {
        Unit::with(|_| {})
    }

    /// A unit whose test defaults `adjust` changes.
    pub(crate) fn with(adjust: impl FnOnce(&mut Config)) -> Unit {
        let dir = tempfile::tempdir().expect("tempdir");
        let key_file = dir.path().join("node.key");
        SigningKey::generate_to_file(&key_file).expect("key written");
        let mut config = Config {
            data_dir: dir.path().join("data"),
            key_file,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            log: "warn".into(),
            signer: SignerConfig {
                debounce_ms: 20,
                max_delay_ms: 200,
            },
            ..Config::example()
        };
        serving::place_in(&mut config, dir.path());
        adjust(&mut config);
        serving::provision(&config);
        Unit { dir, config }
    }

    /// The unit's CA certificate (PEM), which its node's server
    /// certificate chains to.
    pub(crate) fn ca_pem(&self) -> String {
        std::fs::read_to_string(&self.config.tls.ca_file).expect("CA certificate readable")
    }

    /// How a client reaches this unit's node listening on `addr`.
    pub(crate) fn remote(&self, addr: SocketAddr) -> Remote {
        Remote::new(addr, &self.ca_pem())
    }

    /// The unit's public key, as an auditor would hold it.
    pub(crate) fn public_key(&self) -> PublicKey {
        SigningKey::load(&self.config.key_file)
            .expect("key loads")
            .public_key()
    }

    /// Opens the node on the unit's data and serves it in-process (TLS) on
    /// a fresh `127.0.0.1:0` listener.
    pub(crate) async fn start(&self) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let node = Node::open(self.config.clone()).expect("node opens");
        Running::spawn(node, listener, &self.ca_pem())
    }

    /// Writes the config (listening on `127.0.0.1:0`) and starts the real
    /// `tallytree-node` binary on it; returns once the node has reported
    /// the address it bound and answers there as this unit.
    pub(crate) async fn spawn_binary(&self) -> BinaryNode {
        self.spawn_binary_with(&[], Stdio::null()).await
    }

    /// Like [`Unit::spawn_binary`], with extra arguments and `stdin` as the
    /// node's standard input.
    pub(crate) async fn spawn_binary_with(&self, args: &[&str], stdin: Stdio) -> BinaryNode {
        let config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..self.config.clone()
        };
        let config_path = self.dir.path().join("node.toml");
        std::fs::write(&config_path, config.to_toml()).expect("config written");
        // A node killed earlier leaves its report behind.
        let address_file = config.address_file();
        address_file.remove().expect("stale address file removed");
        let log_path = (1..)
            .map(|n| self.dir.path().join(format!("node-{n}.log")))
            .find(|p| !p.exists())
            .expect("a free log name");
        let log = std::fs::File::create(&log_path).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_tallytree-node"))
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .env_remove("TALLYTREE_LOG")
            .stdin(stdin)
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .expect("tallytree-node starts");
        let mut node = BinaryNode {
            child,
            remote: self.remote(config.listen),
            log_path,
        };
        node.remote.addr = node
            .wait_ready(
                &address_file,
                &config.region.to_string(),
                &self.public_key(),
            )
            .await;
        node
    }
}

/// The gRPC clients of one node, each presenting the credential its
/// service needs (a request's own `authorization` header goes instead).
pub(crate) struct Clients {
    /// Intake, as the operator.
    pub(crate) intake: IntakeClient<Authed>,
    /// Query, as the reader.
    pub(crate) query: QueryClient<Authed>,
    /// Audit, as the auditor.
    pub(crate) audit: AuditClient<Authed>,
}

impl Clients {
    /// Clients of the node `remote`.
    pub(crate) fn new(remote: &Remote) -> Clients {
        Clients {
            intake: IntakeClient::new(remote.with_token(OPERATOR_TOKEN)),
            query: QueryClient::new(remote.with_token(READER_TOKEN)),
            audit: AuditClient::new(remote.with_token(AUDITOR_TOKEN)),
        }
    }

    /// Records cases as the operator; panics unless all are accepted.
    pub(crate) async fn record_cases(&mut self, cases: Vec<pb::Case>) -> pb::RecordResponse {
        let n = cases.len() as u64;
        let out = self
            .intake
            .record_cases(authed(pb::RecordCasesRequest { cases }))
            .await
            .expect("cases recorded")
            .into_inner();
        assert_eq!(out.accepted, n, "{out:?}");
        assert!(out.refused.is_empty(), "{out:?}");
        out
    }

    /// Records tasks as the operator; panics unless all are accepted.
    pub(crate) async fn record_tasks(&mut self, tasks: Vec<pb::Task>) -> pb::RecordResponse {
        let n = tasks.len() as u64;
        let out = self
            .intake
            .record_tasks(authed(pb::RecordTasksRequest { tasks }))
            .await
            .expect("tasks recorded")
            .into_inner();
        assert_eq!(out.accepted, n, "{out:?}");
        out
    }

    /// Streams `chunks` to Intake.Import as the operator.
    pub(crate) async fn import(
        &mut self,
        chunks: Vec<pb::ImportChunk>,
    ) -> Result<pb::RecordResponse, tonic::Status> {
        self.intake
            .import(authed(tokio_stream::iter(chunks)))
            .await
            .map(tonic::Response::into_inner)
    }

    /// This node's own row for `period`.
    pub(crate) async fn row(&mut self, period: &str) -> pb::RegionRow {
        let mut rows = self
            .query
            .tally(pb::TallyRequest {
                region: String::new(),
                period: period.into(),
                depth: 0,
            })
            .await
            .expect("query answers")
            .into_inner()
            .rows;
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows.remove(0)
    }

    /// Polls this node's row for `period` until nothing is pending and
    /// `done` holds; panics after [`WAIT`].
    pub(crate) async fn wait_row(
        &mut self,
        period: &str,
        done: impl Fn(&pb::RegionRow) -> bool,
    ) -> pb::RegionRow {
        self.wait_row_within(period, WAIT, done).await
    }

    /// Like [`Clients::wait_row`], giving up after `limit`.
    pub(crate) async fn wait_row_within(
        &mut self,
        period: &str,
        limit: Duration,
        done: impl Fn(&pb::RegionRow) -> bool,
    ) -> pb::RegionRow {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let row = self.row(period).await;
            if !row.pending && done(&row) {
                return row;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {limit:?} for {period}; last row: {row:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until every month of `period` is signed and nothing is pending.
    pub(crate) async fn wait_signed(&mut self, period: &str) -> pb::RegionRow {
        self.wait_row(period, |r| r.months_missing.is_empty()).await
    }

    /// The signed revisions of this node's summary for `month`, oldest first.
    pub(crate) async fn revisions(&mut self, month: &str) -> Vec<pb::Envelope> {
        self.audit
            .revisions(pb::RevisionsRequest {
                region: String::new(),
                period: month.into(),
            })
            .await
            .expect("revisions answer")
            .into_inner()
            .summaries
    }
}

impl Running {
    /// Clients of this node.
    pub(crate) fn clients(&self) -> Clients {
        Clients::new(&self.remote())
    }
}

/// The real `tallytree-node` binary, running.
pub(crate) struct BinaryNode {
    /// The process.
    child: Child,
    /// Where it listens, and its unit's CA.
    remote: Remote,
    /// Its stdout and stderr, shown when something goes wrong.
    log_path: PathBuf,
}

impl BinaryNode {
    /// Where it listens.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.remote.addr
    }

    /// How clients reach it.
    pub(crate) fn remote(&self) -> Remote {
        self.remote.clone()
    }

    /// Clients of this node.
    pub(crate) fn clients(&self) -> Clients {
        Clients::new(&self.remote)
    }

    /// The write end of the node's standard input, when it was piped.
    pub(crate) fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the node logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits until the node has written its address to `address_file` and
    /// answers there as `region` with `key`; panics if it exits first,
    /// if another node answers, or after [`WAIT`].
    async fn wait_ready(
        &mut self,
        address_file: &AddressFile,
        region: &str,
        key: &PublicKey,
    ) -> SocketAddr {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                panic!(
                    "tallytree-node exited ({status}) before serving:\n{}",
                    self.log()
                );
            }
            if let Some(addr) = address_file.read().expect("address file readable")
                && let Some(found) = identity(&self.remote.via(addr)).await
            {
                assert_eq!(
                    (found.region.as_str(), found.key_id.as_str()),
                    (region, key.key_id().as_str()),
                    "another node answers at {addr}"
                );
                return addr;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "tallytree-node not serving after {WAIT:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends `signal` (a `kill` signal name, e.g. TERM) to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Kills the process with SIGKILL: no shutdown, no final signing.
    pub(crate) fn kill(mut self) {
        self.child.kill().expect("SIGKILL sent");
        self.child.wait().expect("reaped");
    }

    /// Waits up to `limit` for the process to exit and returns its status
    /// and log.
    pub(crate) async fn wait_exit(mut self, limit: Duration) -> (ExitStatus, String) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("child status") {
                return (status, self.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "tallytree-node still running {limit:?} after being told to stop:\n{}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for BinaryNode {
    fn drop(&mut self) {
        // Never leave a node behind, whatever the test did.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Who the node `remote` says it is (Node.Identity needs no credential);
/// `None` while nothing answers there over TLS verified by the unit's CA.
pub(crate) async fn identity(remote: &Remote) -> Option<pb::IdentityResponse> {
    let channel = remote
        .endpoint()
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .ok()?;
    NodeClient::new(channel)
        .identity(pb::IdentityRequest {})
        .await
        .ok()
        .map(tonic::Response::into_inner)
}

/// `msg` with the operator token attached.
pub(crate) fn authed<T>(msg: T) -> Request<T> {
    with_token(msg, &format!("Bearer {OPERATOR_TOKEN}"))
}

/// `msg` with `authorization` metadata set to `value`.
pub(crate) fn with_token<T>(msg: T, value: &str) -> Request<T> {
    let mut request = Request::new(msg);
    request
        .metadata_mut()
        .insert("authorization", value.parse().expect("ascii metadata"));
    request
}

/// A case of category 邻里 (neighbour) registered on `registered`.
pub(crate) fn case(id: &str, registered: &str, state: pb::CaseState, closed: &str) -> pb::Case {
    pb::Case {
        id: id.into(),
        category: pb::Category::Neighbour as i32,
        registered_on: registered.into(),
        state: state as i32,
        closed_on: closed.into(),
        deadline: String::new(),
    }
}

/// A case still in progress.
pub(crate) fn open_case(id: &str, registered: &str) -> pb::Case {
    case(id, registered, pb::CaseState::InProgress, "")
}

/// A case resolved on `closed`.
pub(crate) fn resolved_case(id: &str, registered: &str, closed: &str) -> pb::Case {
    case(id, registered, pb::CaseState::Resolved, closed)
}

/// `n` in-progress cases `{prefix}-{i}`, registered on `registered`.
pub(crate) fn open_cases(prefix: &str, n: usize, registered: &str) -> Vec<pb::Case> {
    (0..n)
        .map(|i| open_case(&format!("{prefix}-{i}"), registered))
        .collect()
}

/// A governance task due on `deadline`.
pub(crate) fn task(id: &str, deadline: &str, state: pb::TaskState) -> pb::Task {
    pb::Task {
        id: id.into(),
        title: "网格员培训".into(),
        deadline: deadline.into(),
        state: state as i32,
    }
}

/// Cases as import rows, numbered from `first_line`.
pub(crate) fn import_rows(first_line: u64, cases: Vec<pb::Case>) -> Vec<pb::ImportCase> {
    cases
        .into_iter()
        .zip(first_line..)
        .map(|(case, line)| pb::ImportCase {
            line,
            case: Some(case),
        })
        .collect()
}

/// One import chunk carrying `cases`.
pub(crate) fn chunk(cases: Vec<pb::ImportCase>) -> pb::ImportChunk {
    pb::ImportChunk {
        cases,
        ..Default::default()
    }
}

/// Case counts summed over categories.
pub(crate) fn case_totals(tally: Option<&pb::Tally>) -> pb::CaseCounts {
    let mut sum = pb::CaseCounts::default();
    for c in tally.map(|t| t.cases.as_slice()).unwrap_or_default() {
        sum.registered += c.registered;
        sum.resolved += c.resolved;
        sum.escalated += c.escalated;
        sum.in_progress += c.in_progress;
        sum.resolved_on_time += c.resolved_on_time;
    }
    sum
}

/// Cases registered in the period of `row`.
pub(crate) fn registered(row: &pb::RegionRow) -> u64 {
    case_totals(row.total.as_ref()).registered
}

/// Today at the unit (UTC+8), as the node sees it.
pub(crate) fn today() -> NaiveDate {
    (Utc::now() + chrono::Duration::hours(8)).date_naive()
}

/// A date safely in the node's future, whatever the time of day.
pub(crate) fn future_date() -> String {
    today()
        .checked_add_days(Days::new(3))
        .expect("date in range")
        .to_string()
}

/// The month after the unit's current month.
pub(crate) fn next_month() -> String {
    Month::of(today())
        .expect("current month")
        .next()
        .to_string()
}
