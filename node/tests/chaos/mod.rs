//! What the fault-injection tests share: units running as real
//! `tallytree-node` processes (killed with SIGKILL, paused with SIGSTOP,
//! restarted on the same data, optionally armed with a kill point), the
//! userspace TCP relays their children push through (which follow a
//! restarted parent to its new port and can be cut, healed or reset), the
//! record of what each village's office sent, and the invariant:
//!
//! - every receipt a child holds names a summary its parent holds with that
//!   revision and digest (the witness keeps every receipt seen, so one seen
//!   before a kill is checked again after it), and no child loses one;
//! - no summary is counted twice: one stored summary per revision, each
//!   child counted once, at its latest revision;
//! - every node's total is exactly what its villages recorded.
//!
//! A test module declares `mod fed;` beside `mod chaos;`: this module builds
//! on the federation helpers.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Write,
    net::SocketAddr,
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tallytree_aggregator::{SummaryView, Tally};
use tallytree_node::{
    config::{AddressFile, Config},
    faults,
    records::{Rules, parse_case},
    store::{Cf, Store, layout},
};
use tallytree_proto::{
    Digest, Month, PublicKey, RegionCode,
    pb::{self, audit_client::AuditClient, intake_client::IntakeClient, node_client::NodeClient},
    statement,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::watch,
    task::JoinHandle,
};
use tonic::Status;

use crate::fed::{
    self, AUDITOR_TOKEN, DEADLINE_DAYS, OPERATOR_TOKEN, Remote, Unit, WAIT, enrol, install,
    open_store, today,
};

/// Pause between two looks while polling.
const POLL: Duration = Duration::from_millis(20);
/// Longest one call of a test client may take before it counts as failed
/// (a paused node answers nothing).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of a node's log shown when a test fails.
const LOG_TAIL: usize = 80;

/// A unit with the fault tests' settings: the federation helpers' fast
/// signer and backoff, and a 1 s limit on one submission, so that a parent
/// that stops answering is noticed quickly.
pub(crate) fn unit(code_name: (&str, &str)) -> Unit {
    let mut unit = Unit::new(code_name);
    unit.config.parent.timeout_ms = 1_000;
    unit
}

/// A unit's node running as the real binary, on its own data, config and
/// keys: started, killed, paused and restarted by the test. It listens on a
/// port of its choosing (`127.0.0.1:0`) each time it starts; [`Link`]s and
/// [`Route`]s follow it there.
pub(crate) struct Proc {
    /// Its name and code, for messages.
    pub(crate) label: String,
    /// Its region.
    pub(crate) region: RegionCode,
    /// Its public key.
    pub(crate) key: PublicKey,
    /// Its data directory.
    pub(crate) data_dir: PathBuf,
    /// The config file it runs with.
    config_path: PathBuf,
    /// Its stdout and stderr, appended across restarts.
    log_path: PathBuf,
    /// Where it reports the address it bound.
    address_file: AddressFile,
    /// Its unit's CA certificate, PEM.
    ca_pem: Arc<str>,
    /// The running process, if any.
    child: Option<Child>,
    /// Its standard input: the node stops when the test process goes away.
    stdin: Option<ChildStdin>,
    /// Where it listens while it runs; `None` while it is down.
    target: watch::Sender<Option<SocketAddr>>,
    /// Times started.
    starts: u32,
    /// Stopped with SIGSTOP.
    paused: bool,
}

impl Proc {
    /// Writes `unit`'s config (listening on `127.0.0.1:0`) and starts the
    /// binary, with `kill_at` as `TALLYTREE_KILL_AT` when given; returns
    /// once it serves as its unit.
    pub(crate) async fn start(unit: &Unit, kill_at: Option<&str>) -> Proc {
        let config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..unit.config.clone()
        };
        let config_path = unit.dir.path().join("node.toml");
        std::fs::write(&config_path, config.to_toml()).expect("config written");
        let (target, _) = watch::channel(None);
        let mut proc = Proc {
            label: format!("{} {}", unit.config.name, unit.region()),
            region: unit.region(),
            key: unit.public_key,
            data_dir: config.data_dir.clone(),
            config_path,
            log_path: unit.dir.path().join("node.log"),
            address_file: config.address_file(),
            ca_pem: fed::ca_pem(&config).into(),
            child: None,
            stdin: None,
            target,
            starts: 0,
            paused: false,
        };
        proc.launch(kill_at);
        proc.wait_ready().await;
        proc
    }

    fn launch(&mut self, kill_at: Option<&str>) {
        assert!(self.child.is_none(), "{} is still running", self.label);
        self.address_file
            .remove()
            .expect("stale address file removed");
        self.starts += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        let armed = kill_at.map_or_else(String::new, |k| format!(" with {}={k}", faults::VAR));
        writeln!(
            log,
            "=== start {} of {}{armed} ===",
            self.starts, self.label
        )
        .expect("log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tallytree-node"));
        command
            .arg("--config")
            .arg(&self.config_path)
            .arg("--stop-when-stdin-closes")
            .env_remove("TALLYTREE_LOG")
            .env_remove(faults::VAR)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        if let Some(k) = kill_at {
            command.env(faults::VAR, k);
        }
        let mut child = command.spawn().expect("tallytree-node starts");
        self.stdin = child.stdin.take();
        self.child = Some(child);
    }

    /// Waits until the process has reported its address and answers there
    /// as its unit; panics if it exits first or after [`WAIT`].
    async fn wait_ready(&mut self) -> SocketAddr {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let exited = self
                .child
                .as_mut()
                .expect("started")
                .try_wait()
                .expect("child status");
            if let Some(status) = exited {
                panic!(
                    "{} exited ({status}) before serving:\n{}",
                    self.label,
                    self.log_tail()
                );
            }
            if let Ok(Some(addr)) = self.address_file.read()
                && let Some(found) = identity(&Remote::new(addr, &self.ca_pem)).await
            {
                assert_eq!(
                    (found.region.as_str(), found.key_id.as_str()),
                    (self.region.to_string().as_str(), self.key.key_id().as_str()),
                    "another node answers at {addr}"
                );
                self.target.send_replace(Some(addr));
                return addr;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} not serving after {WAIT:?}:\n{}",
                self.label,
                self.log_tail()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Starts it again on the same data and config (a new port), with
    /// `kill_at` armed when given; returns once it serves.
    pub(crate) async fn restart(&mut self, kill_at: Option<&str>) {
        self.launch(kill_at);
        self.wait_ready().await;
    }

    /// How a client reaches it now; panics while it is down.
    pub(crate) fn remote(&self) -> Remote {
        let addr = self
            .target
            .borrow()
            .unwrap_or_else(|| panic!("{} is down", self.label));
        Remote::new(addr, &self.ca_pem)
    }

    /// How a client reaches it across restarts.
    pub(crate) fn route(&self) -> Route {
        Route {
            ca_pem: self.ca_pem.clone(),
            addr: self.target.subscribe(),
        }
    }

    /// Whether the process is running (or paused).
    pub(crate) fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("child status").is_none(),
            None => false,
        }
    }

    /// Kills it with SIGKILL (paused or not) and reaps it.
    pub(crate) fn kill(&mut self) {
        self.target.send_replace(None);
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            child.wait().expect("reaped");
        }
        self.stdin = None;
        self.paused = false;
    }

    /// Stops it gracefully (SIGTERM: it stops serving, signs what is
    /// pending) and reaps it.
    pub(crate) async fn stop(&mut self) {
        let status = self.terminate().await;
        assert!(
            status.success(),
            "{} stopped with {status}:\n{}",
            self.label,
            self.log_tail()
        );
    }

    /// Sends SIGTERM (resuming it first if paused) and waits for it to
    /// exit; returns how it ended.
    pub(crate) async fn terminate(&mut self) -> ExitStatus {
        if self.paused {
            self.resume();
        }
        self.signal("TERM");
        self.wait_exit().await
    }

    /// Waits until the process exits by itself (a kill point), up to
    /// [`WAIT`]; returns how it ended.
    pub(crate) async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let child = self.child.as_mut().expect("started");
            if let Some(status) = child.try_wait().expect("child status") {
                self.child = None;
                self.stdin = None;
                self.target.send_replace(None);
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} still running after {WAIT:?}:\n{}",
                self.label,
                self.log_tail()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until it has killed itself at kill point `point`: SIGKILL,
    /// and the node's line saying so.
    pub(crate) async fn wait_killed_at(&mut self, point: &str) {
        let status = self.wait_exit().await;
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "{} ended with {status}, not by its kill point:\n{}",
            self.label,
            self.log_tail()
        );
        let line = format!("kill point {point} reached: SIGKILL");
        assert!(
            self.log().contains(&line),
            "{}: no '{line}' in its log:\n{}",
            self.label,
            self.log_tail()
        );
    }

    /// Pauses it with SIGSTOP: its sockets stay open, nothing answers.
    pub(crate) fn pause(&mut self) {
        self.signal("STOP");
        self.paused = true;
    }

    /// Resumes it with SIGCONT.
    pub(crate) fn resume(&mut self) {
        self.signal("CONT");
        self.paused = false;
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// Everything it logged, across restarts.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last lines of its log.
    pub(crate) fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Never leave a node behind, whatever the test did.
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- {} log (tail) ---\n{}", self.label, self.log_tail());
        }
    }
}

/// How a client reaches a node across its restarts: the unit's CA and the
/// address the node listens on while it runs.
#[derive(Clone)]
pub(crate) struct Route {
    /// The unit's CA certificate, PEM.
    ca_pem: Arc<str>,
    /// Where the node listens; `None` while it is down.
    addr: watch::Receiver<Option<SocketAddr>>,
}

impl Route {
    /// The node as it is reached now, `None` while it is down.
    pub(crate) fn now(&self) -> Option<Remote> {
        self.addr.borrow().map(|a| Remote::new(a, &self.ca_pem))
    }
}

/// Who the node `remote` says it is; `None` while nothing answers there.
pub(crate) async fn identity(remote: &Remote) -> Option<pb::IdentityResponse> {
    let channel = remote
        .endpoint()
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .ok()?;
    tokio::time::timeout(
        CALL_TIMEOUT,
        NodeClient::new(channel).identity(pb::IdentityRequest {}),
    )
    .await
    .ok()?
    .ok()
    .map(tonic::Response::into_inner)
}

/// A userspace TCP relay from a listener of its own to a node, following
/// the node to the port it listens on after a restart (a connection made
/// while the node is down is closed at once, as a refused one would be).
/// [`Link::cut`] makes it a black hole in both directions, [`Link::heal`]
/// lets everything held pass again, [`Link::reset`] drops every open
/// connection.
pub(crate) struct Link {
    /// Where the relay listens: the address a child pushes to.
    pub(crate) addr: SocketAddr,
    /// False while cut.
    up: watch::Sender<bool>,
    /// Bumped to drop every open connection.
    reset: watch::Sender<u64>,
    /// The accepting task.
    accept: JoinHandle<()>,
    /// Connections relayed so far.
    pub(crate) connections: Arc<AtomicU64>,
}

impl Link {
    /// A relay to the node `to`.
    pub(crate) async fn to(to: &Proc) -> Link {
        let target = to.target.subscribe();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (up, up_rx) = watch::channel(true);
        let (reset, reset_rx) = watch::channel(0u64);
        let connections = Arc::new(AtomicU64::new(0));
        let count = connections.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(POLL).await;
                    continue;
                };
                count.fetch_add(1, Ordering::Relaxed);
                let mut reset = reset_rx.clone();
                reset.borrow_and_update();
                tokio::spawn(relay(inbound, target.clone(), up_rx.clone(), reset));
            }
        });
        Link {
            addr,
            up,
            reset,
            accept,
            connections,
        }
    }

    /// Cuts the link: nothing passes either way, nothing is refused
    /// (connections stay open, new ones are accepted and held), as when the
    /// network between two offices goes dark.
    pub(crate) fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Heals the link: what was held passes, and new connections go
    /// through.
    pub(crate) fn heal(&self) {
        self.up.send_replace(true);
    }

    /// Drops every open connection (both ends see it close).
    pub(crate) fn reset(&self) {
        self.reset.send_modify(|n| *n += 1);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.accept.abort();
        // Dropping the senders ends every relay.
    }
}

/// Relays one connection: waits while the link is cut, connects to where
/// the node listens now (closing the connection when it is down), then
/// copies both ways.
async fn relay(
    inbound: TcpStream,
    target: watch::Receiver<Option<SocketAddr>>,
    mut up: watch::Receiver<bool>,
    mut reset: watch::Receiver<u64>,
) {
    tokio::select! {
        r = up.wait_for(|u| *u) => if r.is_err() { return },
        _ = reset.changed() => return,
    }
    let Some(addr) = *target.borrow() else { return };
    let Ok(outbound) = TcpStream::connect(addr).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (from_child, to_child) = inbound.into_split();
    let (from_node, to_node) = outbound.into_split();
    tokio::join!(
        pipe(from_child, to_node, up.clone(), reset.clone()),
        pipe(from_node, to_child, up, reset),
    );
}

/// Copies one direction, holding what it read while the link is cut.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut up: watch::Receiver<bool>,
    mut reset: watch::Receiver<u64>,
) {
    let mut buf = vec![0u8; 32 << 10];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = reset.changed() => return,
        };
        tokio::select! {
            r = up.wait_for(|u| *u) => if r.is_err() { return },
            _ = reset.changed() => return,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A federation of real processes: each unit's node, and a [`Link`] from
/// each child to its parent.
pub(crate) struct Tree {
    /// The units' nodes, parents before children (dropped before the
    /// units, whose directories hold their logs).
    pub(crate) procs: Vec<Proc>,
    /// Each unit's relay to its parent, when its parent is in the tree.
    pub(crate) uplinks: Vec<Option<Link>>,
    /// Each unit's parent's index in the tree.
    pub(crate) parents: Vec<Option<usize>>,
    /// The units, in the same order (they hold keys, data and logs).
    pub(crate) units: Vec<Unit>,
}

impl Tree {
    /// Starts `units` (parents first), each child pushing to its parent (if
    /// in the tree) through a relay and enrolled there; `kill_at` arms kill
    /// points of named units.
    pub(crate) async fn start(mut units: Vec<Unit>, kill_at: &[(&str, &str)]) -> Tree {
        let codes: Vec<RegionCode> = units.iter().map(Unit::region).collect();
        let mut tree = Tree {
            procs: Vec::new(),
            uplinks: Vec::new(),
            parents: Vec::new(),
            units: Vec::new(),
        };
        for mut unit in units.drain(..) {
            let parent = unit
                .region()
                .parent()
                .and_then(|p| codes.iter().position(|c| *c == p));
            let link = match parent {
                Some(p) => {
                    let link = Link::to(&tree.procs[p]).await;
                    unit.push_to(link.addr);
                    Some(link)
                }
                None => None,
            };
            let armed = kill_at
                .iter()
                .find(|(code, _)| *code == unit.region().to_string())
                .map(|(_, point)| *point);
            let proc = Proc::start(&unit, armed).await;
            if let Some(p) = parent {
                let enrolled = enrol(
                    &tree.procs[p].remote(),
                    unit.region(),
                    &unit.config.name,
                    unit.public_key,
                    &unit.tls_csr,
                )
                .await;
                install(&proc.remote(), enrolled).await;
            }
            tree.units.push(unit);
            tree.procs.push(proc);
            tree.uplinks.push(link);
            tree.parents.push(parent);
        }
        tree
    }

    /// The index of unit `code`.
    pub(crate) fn index(&self, code: &str) -> usize {
        self.procs
            .iter()
            .position(|p| p.region.to_string() == code)
            .unwrap_or_else(|| panic!("{code} is not in this tree"))
    }

    /// The node of unit `code`.
    pub(crate) fn proc(&mut self, code: &str) -> &mut Proc {
        let i = self.index(code);
        &mut self.procs[i]
    }

    /// The relay from unit `code` to its parent.
    pub(crate) fn uplink(&self, code: &str) -> &Link {
        self.uplinks[self.index(code)]
            .as_ref()
            .unwrap_or_else(|| panic!("{code} has no parent in this tree"))
    }

    /// The indexes of the children of unit `i`.
    pub(crate) fn children(&self, i: usize) -> Vec<usize> {
        (0..self.procs.len())
            .filter(|c| self.parents[*c] == Some(i))
            .collect()
    }

    /// The indexes of the villages under unit `i` (itself when it has no
    /// children).
    pub(crate) fn leaves_under(&self, i: usize) -> Vec<usize> {
        let children = self.children(i);
        if children.is_empty() {
            return vec![i];
        }
        children
            .into_iter()
            .flat_map(|c| self.leaves_under(c))
            .collect()
    }

    /// Notes what every running child holds from its parent in `month` and
    /// checks everything noted so far against every running parent.
    pub(crate) async fn check(&mut self, witness: &mut Witness, month: Month) {
        for i in 0..self.procs.len() {
            let Some(p) = self.parents[i] else { continue };
            if !self.procs[i].running() || !self.procs[p].running() {
                continue;
            }
            let child = &self.procs[i];
            match held_receipts(&child.remote(), child.region, month).await {
                Ok(held) => {
                    witness.note(child.region, &self.procs[p].key, &held);
                    witness.still_held(child.region, &held, "live");
                }
                Err(s) => witness.violation(format!(
                    "{}: its receipts cannot be read: {s:?}",
                    child.label
                )),
            }
        }
        for i in 0..self.procs.len() {
            let Some(p) = self.parents[i] else { continue };
            if !self.procs[p].running() {
                continue;
            }
            let parent = self.procs[p].remote();
            witness.check_parent(&parent, self.procs[i].region).await;
        }
    }

    /// Waits until every node's total for `month` is exactly the sum of
    /// the villages' books under it, then checks that each parent counts
    /// each child once, at the child's latest revision, and stores one
    /// summary per revision.
    pub(crate) async fn converge(&self, books: &BTreeMap<usize, Tally>, month: Month) {
        for i in (0..self.procs.len()).rev() {
            let want = fed::sum(
                self.leaves_under(i)
                    .iter()
                    .map(|l| books.get(l).expect("a book for every village")),
            );
            fed::wait_total(&self.procs[i].remote(), month, want).await;
        }
        for i in 0..self.procs.len() {
            let children = self.children(i);
            if children.is_empty() {
                continue;
            }
            let parent = self.procs[i].remote();
            let own = revisions(&parent, self.procs[i].region, month).await;
            let (_, rollup) = own.last().expect("the parent signed");
            let counted: Vec<RegionCode> = rollup.children.iter().map(|c| c.region).collect();
            let unique: BTreeSet<RegionCode> = counted.iter().copied().collect();
            assert_eq!(
                counted.len(),
                unique.len(),
                "{}: a child counted twice: {counted:?}",
                self.procs[i].label
            );
            for c in children {
                let child = &self.procs[c];
                let held = revisions(&parent, child.region, month).await;
                one_per_revision(&held).unwrap_or_else(|e| panic!("{}: {e}", self.procs[i].label));
                let latest = revisions(&child.remote(), child.region, month)
                    .await
                    .last()
                    .map(|(_, v)| v.revision)
                    .expect("the child signed");
                let entry = rollup
                    .children
                    .iter()
                    .find(|e| e.region == child.region)
                    .unwrap_or_else(|| panic!("{} not counted: {rollup:?}", child.label));
                assert_eq!(
                    entry.revision, latest,
                    "{} counts {} at revision {}, its latest is {latest}",
                    self.procs[i].label, child.label, entry.revision
                );
            }
        }
    }

    /// Stops every node gracefully (children first) and checks what each
    /// child holds in its store: every receipt noted is still there, and
    /// every receipt there names a summary its parent's store holds with
    /// that revision and digest; nothing waits in a child's outbox; no node
    /// keeps conflicting summaries as evidence or leftovers of an import.
    pub(crate) async fn stop_and_check_stores(&mut self, witness: &mut Witness) {
        for p in self.procs.iter_mut().rev() {
            p.stop().await;
        }
        let mut held_by: Vec<BTreeMap<(RegionCode, Month, u64), Digest>> = Vec::new();
        for p in &self.procs {
            let store = open_store(&p.data_dir).await;
            // Nothing left of an import.
            let mut staged = 0;
            store
                .scan(Cf::Staging, b"", &mut |_, _| {
                    staged += 1;
                    true
                })
                .expect("scan");
            if staged > 0 {
                witness.violation(format!("{}: {staged} staged import rows left", p.label));
            }
            let marks = layout::committed_imports(&store).expect("commit marks");
            if !marks.is_empty() {
                witness.violation(format!("{}: import commit marks left: {marks:?}", p.label));
            }
            let mut rows = Vec::new();
            store
                .scan(Cf::Summaries, b"", &mut |_, v| {
                    rows.push(layout::SummaryRow::from_bytes(v).expect("a summary row"));
                    true
                })
                .expect("summaries");
            let mut held = BTreeMap::new();
            for row in rows {
                let view = row.view().expect("a summary");
                held.insert(
                    (view.region, view.period, view.revision),
                    row.digest().expect("digest"),
                );
            }
            let evidence = layout::envelopes(&store, Cf::Evidence, b"").expect("evidence");
            witness.judge_evidence(p, &held, &evidence);
            held_by.push(held);
        }
        for i in 0..self.procs.len() {
            let Some(p) = self.parents[i] else { continue };
            let child = &self.procs[i];
            let store = open_store(&child.data_dir).await;
            let receipts = layout::envelopes(&store, Cf::Receipts, b"").expect("receipts");
            assert_eq!(
                layout::outbox(&store).expect("outbox"),
                vec![],
                "{}: something still waits to be pushed",
                child.label
            );
            drop(store);
            witness.note(child.region, &self.procs[p].key, &receipts);
            witness.still_held(child.region, &receipts, "in its store");
            for (key, digest) in witness.noted(child.region) {
                witness.checked += 1;
                if held_by[p].get(&key) != Some(&digest) {
                    witness.violation(format!(
                        "{} holds a receipt for revision {} of {} ({}) that {}'s store does not hold",
                        child.label,
                        key.2,
                        key.1,
                        digest.short(),
                        self.procs[p].label
                    ));
                }
            }
        }
    }
}

/// Receipt `env`, decoded without checking its signature.
pub(crate) fn receipt_of(env: &pb::Envelope) -> pb::Receipt {
    statement::peek_unverified(env).expect("a receipt")
}

/// The receipts the node `at` (of `region`) holds from its parent for
/// `month`, as its auditor exports them.
pub(crate) async fn held_receipts(
    at: &Remote,
    region: RegionCode,
    month: Month,
) -> Result<Vec<pb::Envelope>, Status> {
    let fetch = async {
        let mut items = AuditClient::new(at.with_token(AUDITOR_TOKEN))
            .max_decoding_message_size(256 << 20)
            .export_evidence(pb::ExportEvidenceRequest {
                region: String::new(),
                period: month.to_string(),
            })
            .await?
            .into_inner();
        let mut out = Vec::new();
        while let Some(item) = items.message().await? {
            if let Some(pb::evidence_item::Item::Receipt(env)) = item.item {
                // The bundle also carries the receipts a parent gave its own
                // children.
                if receipt_of(&env).region == region.to_string() {
                    out.push(env);
                }
            }
        }
        Ok(out)
    };
    tokio::time::timeout(CALL_TIMEOUT, fetch)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("export took too long")))
}

/// The receipts held in a stopped node's store.
pub(crate) async fn stored_receipts(data_dir: &Path) -> Vec<pb::Envelope> {
    let store = open_store(data_dir).await;
    layout::envelopes(&store, Cf::Receipts, b"").expect("receipts")
}

/// Every stored revision of `region`'s summary for `month` at `at`, oldest
/// first, decoded (not verified), as its auditor reads them.
pub(crate) async fn revisions_at(
    at: &Remote,
    region: RegionCode,
    month: Month,
) -> Result<Vec<(pb::Envelope, SummaryView)>, Status> {
    // A long run keeps thousands of revisions.
    let mut client =
        AuditClient::new(at.with_token(AUDITOR_TOKEN)).max_decoding_message_size(256 << 20);
    let call = client.revisions(pb::RevisionsRequest {
        region: region.to_string(),
        period: month.to_string(),
    });
    let envs = tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("revisions took too long")))?
        .into_inner()
        .summaries;
    Ok(envs
        .into_iter()
        .map(|env| {
            let s: pb::Summary = statement::peek_unverified(&env).expect("a summary");
            let view = SummaryView::from_pb(&s).expect("a valid summary");
            (env, view)
        })
        .collect())
}

/// [`revisions_at`], panicking when the node does not answer.
pub(crate) async fn revisions(
    at: &Remote,
    region: RegionCode,
    month: Month,
) -> Vec<(pb::Envelope, SummaryView)> {
    revisions_at(at, region, month)
        .await
        .unwrap_or_else(|s| panic!("revisions of {region} at {}: {s:?}", at.addr))
}

/// Err unless the revisions are strictly increasing: one stored summary
/// per revision.
pub(crate) fn one_per_revision(held: &[(pb::Envelope, SummaryView)]) -> Result<(), String> {
    let revs: Vec<u64> = held.iter().map(|(_, v)| v.revision).collect();
    if revs.windows(2).all(|w| w[0] < w[1]) {
        Ok(())
    } else {
        Err(format!("more than one summary per revision: {revs:?}"))
    }
}

/// The driver's own record of every receipt it has seen a child hold, and
/// what it found wrong.
#[derive(Default)]
pub(crate) struct Witness {
    /// Child, month and revision to the digest the receipt names.
    seen: BTreeMap<(RegionCode, Month, u64), Digest>,
    /// Receipts checked against a parent (counting each check).
    pub(crate) checked: u64,
    /// Every violation found, in words.
    pub(crate) violations: Vec<String>,
}

impl Witness {
    /// A witness.
    pub(crate) fn new() -> Witness {
        Witness::default()
    }

    /// Checks the equivocation evidence a stopped node keeps, given the
    /// summaries it `held`: no child may have signed two summaries of one
    /// revision (every child here signs each revision once), and nothing
    /// the node never held may be kept (a superseded revision arriving
    /// after a later one is no conflict).
    pub(crate) fn judge_evidence(
        &mut self,
        node: &Proc,
        held: &BTreeMap<(RegionCode, Month, u64), Digest>,
        evidence: &[pb::Envelope],
    ) {
        let mut kept: BTreeMap<(RegionCode, Month, u64), BTreeSet<Digest>> = BTreeMap::new();
        for env in evidence {
            let s: pb::Summary = statement::peek_unverified(env).expect("a summary");
            let view = SummaryView::from_pb(&s).expect("a valid summary");
            kept.entry((view.region, view.period, view.revision))
                .or_default()
                .insert(Digest::of(&env.payload));
        }
        let refusals: Vec<String> = node
            .log()
            .lines()
            .filter(|l| l.contains("equivocation refused"))
            .map(str::to_owned)
            .collect();
        for ((region, month, revision), digests) in kept {
            let held_digest = held.get(&(region, month, revision));
            let twice = digests.len() > 1 || held_digest.is_some_and(|h| !digests.contains(h));
            if twice {
                self.violation(format!(
                    "{}: {region} signed revision {revision} of {month} twice ({digests:?}, held {held_digest:?}); its log: {refusals:#?}",
                    node.label
                ));
            } else if held_digest.is_none() {
                let what = format!(
                    "{} keeps {region}'s revision {revision} of {month} ({}), which it never held, as evidence of equivocation",
                    node.label,
                    digests.iter().next().map(Digest::short).unwrap_or_default()
                );
                self.violation(what);
            }
        }
        if !refusals.is_empty() {
            eprintln!("{}: {refusals:#?}", node.label);
        }
    }

    /// Records a violation (and prints it at once).
    pub(crate) fn violation(&mut self, what: String) {
        eprintln!("VIOLATION: {what}");
        self.violations.push(what);
    }

    /// Notes `receipts` held by `child`: each must be signed by its parent
    /// (`parent_key`), be for `child`, and name the digest a receipt seen
    /// earlier for the same revision named.
    pub(crate) fn note(
        &mut self,
        child: RegionCode,
        parent_key: &PublicKey,
        receipts: &[pb::Envelope],
    ) {
        for env in receipts {
            let r: pb::Receipt = match statement::open(env, parent_key) {
                Ok(r) => r,
                Err(e) => {
                    self.violation(format!(
                        "{child} holds a receipt its parent did not sign: {e}"
                    ));
                    continue;
                }
            };
            let (Ok(month), Some(digest)) =
                (Month::parse(&r.period), Digest::from_slice(&r.digest))
            else {
                self.violation(format!("{child} holds a malformed receipt: {r:?}"));
                continue;
            };
            if r.region != child.to_string() {
                self.violation(format!("{child} holds a receipt for {}", r.region));
                continue;
            }
            let before = self.seen.insert((child, month, r.revision), digest);
            if let Some(b) = before.filter(|b| *b != digest) {
                self.violation(format!(
                    "{child}: the receipt for revision {} of {month} named {}, now {}",
                    r.revision,
                    b.short(),
                    digest.short()
                ));
            }
        }
    }

    /// Checks that `receipts` (what `child` holds now, read `how`) still
    /// has every receipt noted for it.
    pub(crate) fn still_held(&mut self, child: RegionCode, receipts: &[pb::Envelope], how: &str) {
        let now: BTreeSet<(Month, u64)> = receipts
            .iter()
            .map(receipt_of)
            .filter_map(|r| Some((Month::parse(&r.period).ok()?, r.revision)))
            .collect();
        let lost: Vec<(Month, u64)> = self
            .noted(child)
            .into_iter()
            .map(|((_, m, r), _)| (m, r))
            .filter(|k| !now.contains(k))
            .collect();
        if !lost.is_empty() {
            self.violation(format!(
                "{child} no longer holds receipts it held ({how}): {lost:?}"
            ));
        }
    }

    /// The receipts noted for `child`.
    pub(crate) fn noted(&self, child: RegionCode) -> Vec<((RegionCode, Month, u64), Digest)> {
        self.seen
            .iter()
            .filter(|((c, _, _), _)| *c == child)
            .map(|(k, d)| (*k, *d))
            .collect()
    }

    /// Receipts noted, all children.
    pub(crate) fn receipts(&self) -> usize {
        self.seen.len()
    }

    /// Checks every receipt noted for `child` against what its parent `at`
    /// holds: the summary of that revision with that digest.
    pub(crate) async fn check_parent(&mut self, at: &Remote, child: RegionCode) {
        let months: BTreeSet<Month> = self.noted(child).iter().map(|((_, m, _), _)| *m).collect();
        for month in months {
            let held = match revisions_at(at, child, month).await {
                Ok(h) => h
                    .iter()
                    .map(|(env, v)| (v.revision, Digest::of(&env.payload)))
                    .collect::<Vec<_>>(),
                Err(s) => {
                    self.violation(format!(
                        "the parent of {child} does not answer for its revisions: {s:?}"
                    ));
                    continue;
                }
            };
            let revs: Vec<u64> = held.iter().map(|(r, _)| *r).collect();
            if !revs.windows(2).all(|w| w[0] < w[1]) {
                self.violation(format!(
                    "the parent of {child} holds more than one summary for a revision: {revs:?}"
                ));
            }
            for ((_, m, revision), digest) in self.noted(child) {
                if m != month {
                    continue;
                }
                self.checked += 1;
                if !held.contains(&(revision, digest)) {
                    self.violation(format!(
                        "{child} holds a receipt for revision {revision} of {month} ({}) that its parent does not hold (it holds {revs:?})",
                        digest.short()
                    ));
                }
            }
        }
    }
}

/// The cases one village's office sent, as last sent under each id.
#[derive(Default, Clone, Debug)]
pub(crate) struct Book {
    /// By case id.
    cases: BTreeMap<String, pb::Case>,
}

impl Book {
    /// Notes cases the node accepted.
    pub(crate) fn insert(&mut self, cases: &[pb::Case]) {
        for c in cases {
            self.cases.insert(c.id.clone(), c.clone());
        }
    }

    /// The case recorded under `id`.
    pub(crate) fn get(&self, id: &str) -> &pb::Case {
        &self.cases[id]
    }

    /// Cases noted.
    pub(crate) fn len(&self) -> usize {
        self.cases.len()
    }

    /// The tally the cases of `month` add up to, by intake's own parsing
    /// and the aggregator's own counting.
    pub(crate) fn tally(&self, month: Month) -> Tally {
        let rules = Rules {
            today: today(),
            default_deadline_days: DEADLINE_DAYS,
        };
        let mut tally = Tally::default();
        for c in self.cases.values() {
            let (_, record) = parse_case(c, &rules).expect("a valid case");
            if record.month() == month {
                tally.count_case(&record);
            }
        }
        tally
    }
}

/// Records `cases` at `at` as its operator; Err when the call fails (the
/// node may be down: whether the cases were stored is then unknown, and
/// sending them again is harmless). Panics if the node refuses any.
pub(crate) async fn try_record(at: &Remote, cases: &[pb::Case]) -> Result<(), Status> {
    let mut client = IntakeClient::new(at.with_token(OPERATOR_TOKEN));
    let call = client.record_cases(pb::RecordCasesRequest {
        cases: cases.to_vec(),
    });
    let out = tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("record took too long")))?
        .into_inner();
    assert_eq!(out.accepted, cases.len() as u64, "{out:?}");
    assert!(out.refused.is_empty(), "{out:?}");
    Ok(())
}

/// Records `cases` at the node of `route`, retrying until it accepts them
/// (across kills and restarts); returns the failed attempts.
pub(crate) async fn record_surely(route: &Route, cases: &[pb::Case]) -> u64 {
    let mut failed = 0;
    let deadline = tokio::time::Instant::now() + WAIT * 4;
    loop {
        if let Some(at) = route.now()
            && try_record(&at, cases).await.is_ok()
        {
            return failed;
        }
        failed += 1;
        assert!(
            tokio::time::Instant::now() < deadline,
            "cases not accepted after {:?}",
            WAIT * 4
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The cases of call `k` of a storm at a village with case ids
/// `prefix-*`: mostly new cases of four categories, and every third call
/// resolves or escalates the case of two calls before.
pub(crate) fn storm_call(prefix: &str, k: usize, month: Month, book: &Book) -> Vec<pb::Case> {
    let categories = [
        pb::Category::Neighbour,
        pb::Category::Land,
        pb::Category::Labour,
        pb::Category::Debt,
    ];
    if k % 3 == 2 {
        let earlier = book.get(&format!("{prefix}-{}", k - 2));
        let state = if k.is_multiple_of(2) {
            pb::CaseState::Resolved
        } else {
            pb::CaseState::Escalated
        };
        return vec![fed::closed(earlier, state, &fed::day(month, 27))];
    }
    vec![fed::open_case(
        &format!("{prefix}-{k}"),
        categories[k % categories.len()],
        &fed::day(month, 1 + (k % 20) as u64),
    )]
}

/// A village's office recording a storm of cases in the background, across
/// its node's kills and restarts, until told to stop.
pub(crate) struct Recorder {
    /// Set to stop after the call in progress.
    stop: watch::Sender<bool>,
    /// The recording task: the book of what was accepted.
    task: JoinHandle<Book>,
    /// Calls accepted so far.
    pub(crate) calls: Arc<AtomicU64>,
    /// Failed attempts so far (the node down or paused).
    pub(crate) failures: Arc<AtomicU64>,
}

impl Recorder {
    /// Starts recording storm calls with case ids `prefix-*` at the node
    /// of `route`, one every `pace`.
    pub(crate) fn start(route: Route, prefix: String, month: Month, pace: Duration) -> Recorder {
        let (stop, stopped) = watch::channel(false);
        let calls = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let (c, f) = (calls.clone(), failures.clone());
        let task = tokio::spawn(async move {
            let mut book = Book::default();
            for k in 0.. {
                if *stopped.borrow() {
                    break;
                }
                let cases = storm_call(&prefix, k, month, &book);
                f.fetch_add(record_surely(&route, &cases).await, Ordering::Relaxed);
                book.insert(&cases);
                c.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(pace).await;
            }
            book
        });
        Recorder {
            stop,
            task,
            calls,
            failures,
        }
    }

    /// Calls accepted so far.
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Stops after the call in progress is accepted; returns the book.
    pub(crate) async fn finish(self) -> Book {
        self.stop.send_replace(true);
        self.task.await.expect("recorder task")
    }
}

/// A small seeded random number generator (SplitMix64): a failing run can
/// be replayed with its seed.
pub(crate) struct Rng(u64);

impl Rng {
    /// From `FAULT_SEED` when set, else from the clock; the seed is
    /// printed.
    pub(crate) fn from_env() -> Rng {
        let seed = std::env::var("FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock after 1970");
                now.as_nanos() as u64 ^ u64::from(std::process::id())
            });
        eprintln!("fault seed: {seed} (replay with FAULT_SEED={seed})");
        Rng(seed)
    }

    /// The next number.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi`.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    /// A duration of `lo..hi` milliseconds.
    pub(crate) fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.between(lo, hi))
    }
}
