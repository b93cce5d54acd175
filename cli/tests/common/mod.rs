//! What the CLI's integration tests share: the repository root, the
//! `tallytree-node` binary of this build, and a clean `tallytree` command.

#![allow(dead_code)]

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
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
/// run; at once when it is up to date) with the cargo that runs us.
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
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "tallytree-node",
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
