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
//!
//! - `process`: [`Proc`], a unit's node as a process, and [`Route`] to it;
//! - `link`: [`Link`], the relay between a child and its parent;
//! - `tree`: [`Tree`], a federation of processes and its checks;
//! - `witness`: [`Witness`], every receipt seen and the invariant;
//! - `records`: [`Book`], [`Recorder`] and the seeded [`Rng`].

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

mod link;
mod process;
mod records;
mod tree;
mod witness;

pub(crate) use link::*;
pub(crate) use process::*;
pub(crate) use records::*;
pub(crate) use tree::*;
pub(crate) use witness::*;
