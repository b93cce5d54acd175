//! `tallytree demo` stops as it started: on SIGTERM or SIGHUP with
//! `--keep-running`, when one of its nodes fails to start, and when the
//! demo itself is killed, no node process it started is left running. Run
//! with the hidden `--small` tree (one unit per level) to keep it quick;
//! processes are looked up in /proc.

#![cfg(target_os = "linux")]

mod common;

use std::{
    path::Path,
    process::Output,
    time::{Duration, Instant},
};

use common::{
    demo::{Demo, VILLAGE, WAIT},
    node_binary, tallytree,
};

/// Whether process `pid` runs (a zombie, which only waits to be reaped,
/// does not).
fn running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name.
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|s| s.split_whitespace().next());
    state != Some("Z")
}

/// The running processes whose command line names a file in `dir` (a
/// node's `--config`; the demo's own `--dir` names the directory itself). A
/// zombie's command line is empty.
fn processes_in(dir: &Path) -> Vec<u32> {
    let needle = format!("{}/", dir.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(&needle) && running(pid) {
            found.push(pid);
        }
    }
    found
}

/// Starts a kept-running demo, sends `signal`, and checks that it stopped
/// cleanly with every one of its nodes.
fn stops_every_node_on(signal: &str) {
    let root = tempfile::tempdir().expect("tempdir");
    let mut demo = Demo::start_kept_running(root.path());
    let pids = demo.node_pids();
    assert_eq!(pids.len(), 5, "{}", demo.show());
    for pid in &pids {
        assert!(running(*pid), "node {pid} not running:\n{}", demo.show());
    }
    let mut in_dir = processes_in(&demo.dir);
    in_dir.sort_unstable();
    let mut listed = pids.clone();
    listed.sort_unstable();
    assert_eq!(in_dir, listed, "the node list names every node process");

    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(demo.child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
    let code = demo.wait_exit();
    assert_eq!(code, Some(0), "after SIG{signal}:\n{}", demo.show());
    assert!(
        demo.transcript.contains("all nodes stopped cleanly"),
        "{}",
        demo.show()
    );
    for pid in &pids {
        assert!(!running(*pid), "node {pid} outlived the demo");
    }
    assert_eq!(processes_in(&demo.dir), Vec::<u32>::new());
}

#[test]
fn sigterm_stops_a_kept_running_demo_and_every_node() {
    stops_every_node_on("TERM");
}

#[test]
fn sighup_stops_a_kept_running_demo_and_every_node() {
    stops_every_node_on("HUP");
}

#[test]
fn a_killed_demo_takes_its_nodes_with_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut demo = Demo::start_kept_running(root.path());
    let pids = demo.node_pids();
    demo.child.kill().expect("SIGKILL sent");
    demo.child.wait().expect("reaped");
    // Each node sees its standard input end and stops by itself.
    let deadline = Instant::now() + WAIT;
    while pids.iter().any(|p| running(*p)) || !processes_in(&demo.dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "nodes left after the demo was killed: {:?}",
            processes_in(&demo.dir)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_demo_whose_node_fails_to_start_stops_every_node_it_started() {
    let root = tempfile::tempdir().expect("tempdir");
    // A tallytree-node that refuses to start for the demo village only.
    let bin_dir = root.path().join("bin");
    std::fs::create_dir_all(&bin_dir).expect("bin dir");
    let wrapper = bin_dir.join("tallytree-node");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \"$*\" in *{VILLAGE}*) echo 'refusing to start' >&2; exit 3 ;; esac\nexec '{}' \"$@\"\n",
            node_binary().display()
        ),
    )
    .expect("wrapper written");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .expect("wrapper executable");
    }
    let dir = root.path().join("demo");
    let out: Output = tallytree()
        .args(["demo", "--small", "--dir"])
        .arg(&dir)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .output()
        .expect("tallytree demo runs");
    let show = format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{show}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("({VILLAGE}) exited")),
        "{show}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stopping 5 nodes"),
        "{show}"
    );
    assert_eq!(processes_in(&dir), Vec::<u32>::new(), "{show}");
}
