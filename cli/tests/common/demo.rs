//! A `tallytree demo --small --keep-running` in a directory of the test's,
//! and what it printed.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use super::{node_binary, tallytree};

/// Longest any step waits (the demo's walk-through, a stop).
pub(crate) const WAIT: Duration = Duration::from_secs(120);
/// The demo village, the last unit of the small tree.
pub(crate) const VILLAGE: &str = "210214001001";

/// A `tallytree demo --small` running with `--keep-running`.
pub(crate) struct Demo {
    /// The demo process.
    pub(crate) child: Child,
    /// Its data directory (`--dir`).
    pub(crate) dir: PathBuf,
    /// Its standard error.
    stderr: PathBuf,
    /// Lines of its standard output, as they come.
    lines: mpsc::Receiver<String>,
    /// Everything it printed so far.
    pub(crate) transcript: String,
}

impl Demo {
    /// Starts the demo with its data in `root/demo` and waits until it says
    /// the federation keeps running.
    pub(crate) fn start_kept_running(root: &Path) -> Demo {
        let dir = root.join("demo");
        let stderr = root.join("demo.err");
        let mut child = tallytree()
            .args(["demo", "--small", "--keep-running", "--dir"])
            .arg(&dir)
            .arg("--bin-dir")
            .arg(node_dir())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("tallytree demo starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut demo = Demo {
            child,
            dir,
            stderr,
            lines,
            transcript: String::new(),
        };
        demo.wait_for_line("the federation keeps running");
        demo
    }

    /// Reads output until a line contains `text`; panics if the output
    /// ends first or after [`WAIT`].
    pub(crate) fn wait_for_line(&mut self, text: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.transcript.push_str(&line);
                    self.transcript.push('\n');
                    if line.contains(text) {
                        return;
                    }
                }
                Err(_) => panic!("the demo never printed {text:?}:\n{}", self.show()),
            }
        }
    }

    /// Its output so far, for failure messages.
    pub(crate) fn show(&self) -> String {
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!("--- stdout\n{}--- stderr\n{stderr}", self.transcript)
    }

    /// The pids of its nodes, from the node list it writes.
    pub(crate) fn node_pids(&self) -> Vec<u32> {
        let list = std::fs::read_to_string(self.dir.join("nodes.tsv")).expect("nodes.tsv");
        list.lines()
            .skip(1)
            .map(|l| {
                l.split('\t')
                    .nth(3)
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| panic!("no pid in {l:?}"))
            })
            .collect()
    }

    /// Waits for the demo to exit; returns its exit code.
    pub(crate) fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("status") {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
                    self.transcript.push_str(&line);
                    self.transcript.push('\n');
                }
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not exit:\n{}",
                self.show()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The directory of this build's tallytree-node.
pub(crate) fn node_dir() -> PathBuf {
    node_binary().parent().expect("bin dir").to_owned()
}
