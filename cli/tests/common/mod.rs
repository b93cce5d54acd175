//! What the CLI's integration tests share: the repository root, the
//! `tallytree-node` binary of this build, a clean `tallytree` command, and a
//! unit made by `tallytree init` with its node running (TLS, real
//! credentials).

#![allow(dead_code)]

pub(crate) mod demo;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use tallytree_node::config::Config;

/// The repository root, where samples/ is.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// The `tallytree-node` binary of this build, next to `tallytree`. Cargo
/// builds it for the node's own tests, not for ours, so build it (once per
/// run; at once when it is up to date, as it is in the suite) with the cargo
/// that runs us.
pub(crate) fn node_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let cli = Path::new(env!("CARGO_BIN_EXE_tallytree"));
        let profile_dir = cli.parent().expect("profile directory");
        let binary = profile_dir.join(format!("tallytree-node{}", std::env::consts::EXE_SUFFIX));
        if let (Ok(cargo), Some(target_dir), Some(profile)) = (
            std::env::var("CARGO"),
            profile_dir.parent(),
            profile_dir.file_name().and_then(|p| p.to_str()),
        ) {
            let profile = if profile == "debug" { "dev" } else { profile };
            let mut build = Command::new(cargo);
            // Cargo gives us our own package's variables; build scripts
            // (ring's) watch some of them, so passing them on would make
            // this build and the next `cargo test` rebuild each other.
            for (var, _) in std::env::vars_os() {
                let name = var.to_string_lossy();
                if name.starts_with("CARGO_PKG_")
                    || [
                        "CARGO_MANIFEST_DIR",
                        "CARGO_MANIFEST_PATH",
                        "CARGO_CRATE_NAME",
                        "CARGO_BIN_NAME",
                        "CARGO_PRIMARY_PACKAGE",
                        "CARGO_TARGET_TMPDIR",
                        "CARGO_RUSTC_CURRENT_DIR",
                    ]
                    .contains(&name.as_ref())
                {
                    build.env_remove(&var);
                }
            }
            let status = build
                // The whole workspace with its test targets, so features
                // unify exactly as in `cargo test --workspace` (and the
                // suite's nextest run): building one package alone resolves
                // other features and rebuilds RocksDB from scratch.
                .args([
                    "build",
                    "--quiet",
                    "--workspace",
                    "--tests",
                    "--bin",
                    "tallytree-node",
                ])
                .arg("--profile")
                .arg(profile)
                .arg("--target-dir")
                .arg(target_dir)
                .current_dir(repo())
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building tallytree-node failed");
        }
        assert!(binary.exists(), "{} missing", binary.display());
        binary
    })
}

/// A `tallytree` command with no connection settings from the environment.
pub(crate) fn tallytree() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tallytree"));
    for var in [
        "TALLYTREE_NODE",
        "TALLYTREE_CA_FILE",
        "TALLYTREE_TOKEN",
        "TALLYTREE_CONFIG",
        "TALLYTREE_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.current_dir(repo()).stdin(Stdio::null());
    cmd
}

/// Waits until the node `node`, started with the config file `config`,
/// reports the address it bound (`<data_dir>/listen.addr`); panics with
/// `logs()` if it exits first or after `limit`.
pub(crate) fn wait_address(
    node: &mut Child,
    config: &Path,
    limit: Duration,
    logs: impl Fn() -> String,
) -> SocketAddr {
    let file = Config::load(config).expect("config loads").address_file();
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = node.try_wait().expect("status") {
            panic!("node exited ({status}) before serving:\n{}", logs());
        }
        if let Some(addr) = file.read().expect("address file readable") {
            return addr;
        }
        assert!(
            Instant::now() < deadline,
            "node reported no address in {}:\n{}",
            file.path().display(),
            logs()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A finished command's status and output, for failure messages.
pub(crate) fn show(out: &std::process::Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Longest a unit's node may take to start or stop.
const NODE_WAIT: Duration = Duration::from_secs(30);

/// A unit made by `tallytree init` in a directory of its own, its node
/// started from the config init wrote: TLS by the unit's own CA, the
/// operator credential init made, nothing switched off. The node is killed
/// when this is dropped, whether the test passed or not.
pub(crate) struct Unit {
    /// Holds the unit's directory and the node's log; removed on drop.
    pub(crate) dir: tempfile::TempDir,
    /// node.toml written by init.
    pub(crate) config: PathBuf,
    /// What init printed.
    pub(crate) init_stdout: String,
    /// The node process, once started.
    node: Option<Child>,
    /// Where it serves, once started.
    addr: Option<SocketAddr>,
}

impl Unit {
    /// `tallytree init --code CODE --name NAME --dir DIR/unit --listen
    /// 127.0.0.1:0 EXTRA...` in a fresh directory; expects success.
    pub(crate) fn init(code: &str, name: &str, extra: &[&str]) -> Unit {
        let dir = tempfile::tempdir().expect("tempdir");
        let unit_dir = dir.path().join("unit");
        let out = tallytree()
            .args([
                "init",
                "--code",
                code,
                "--name",
                name,
                "--listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .arg("--dir")
            .arg(&unit_dir)
            .output()
            .expect("init runs");
        assert!(out.status.success(), "init: {}", show(&out));
        Unit {
            dir,
            config: unit_dir.join("node.toml"),
            init_stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            node: None,
            addr: None,
        }
    }

    /// Starts the node with the config init wrote and waits until it has
    /// bound its port.
    pub(crate) fn start(&mut self) {
        assert!(self.node.is_none(), "started twice");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log");
        let mut command = Command::new(node_binary());
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("TALLYTREE_") {
                command.env_remove(var);
            }
        }
        let node = command
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("tallytree-node starts");
        let log = self.log_path();
        let node = self.node.insert(node);
        let addr = wait_address(node, &self.config, NODE_WAIT, || {
            std::fs::read_to_string(&log).unwrap_or_default()
        });
        self.addr = Some(addr);
    }

    /// `init` and `start`.
    pub(crate) fn init_and_start(code: &str, name: &str) -> Unit {
        let mut unit = Unit::init(code, name, &[]);
        unit.start();
        unit
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("node.log")
    }

    /// The node's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// A file in the unit's directory.
    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.config.with_file_name(file)
    }

    /// Where the node serves.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr.expect("node started")
    }

    /// The node's URL.
    pub(crate) fn url(&self) -> String {
        format!("https://{}", self.addr())
    }

    /// The first operator's token, as init stored it.
    pub(crate) fn operator_token(&self) -> String {
        std::fs::read_to_string(self.path("operator.token"))
            .expect("operator.token")
            .trim()
            .to_owned()
    }

    /// The node's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.node.as_ref().expect("node started").id()
    }

    /// Whether the node process is still running.
    pub(crate) fn running(&mut self) -> bool {
        self.node
            .as_mut()
            .is_some_and(|n| n.try_wait().expect("status").is_none())
    }

    /// `tallytree --config node.toml ARGS...`: the operator at the unit.
    pub(crate) fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        tallytree()
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("tallytree runs")
    }

    /// `tallytree --node URL --ca-file ca.pem --token TOKEN ARGS...`: a
    /// client holding the unit's CA certificate and a credential.
    pub(crate) fn run_as<I, S>(&self, token: &str, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        tallytree()
            .args(["--node", &self.url(), "--token", token, "--ca-file"])
            .arg(self.path("ca.pem"))
            .args(args)
            .output()
            .expect("tallytree runs")
    }

    /// `tallytree token add --role ROLE --name NAME --config node.toml`;
    /// returns the token it printed.
    pub(crate) fn add_token(&self, role: &str, name: &str) -> String {
        let out = self.run(["token", "add", "--role", role, "--name", name]);
        assert!(out.status.success(), "token add: {}", show(&out));
        let token = String::from_utf8(out.stdout).expect("utf-8");
        let token = token.trim();
        assert!(
            token.starts_with("tt_") && !token.contains(char::is_whitespace),
            "token add printed {token:?}"
        );
        token.to_owned()
    }

    /// Stops the node with SIGTERM and expects a clean exit.
    pub(crate) fn stop(mut self) {
        let Some(mut node) = self.node.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &node.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + NODE_WAIT;
        loop {
            if let Some(status) = node.try_wait().expect("status") {
                assert!(status.success(), "node exit {status}:\n{}", self.log());
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        if let Some(node) = self.node.as_mut() {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}
