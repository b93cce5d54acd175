//! A unit's node as a real process: start, kill, pause, restart, kill points.

#![allow(dead_code)]

use super::*;

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
    pub(super) target: watch::Sender<Option<SocketAddr>>,
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
