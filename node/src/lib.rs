//! The tallytree node: one administrative unit's daemon. It keeps the unit's
//! cases and tasks in RocksDB, derives and signs its monthly summaries, and
//! answers queries over gRPC.
//!
//! # Layout
//!
//! - [`config`]: the TOML configuration and its environment overrides.
//! - [`clock`]: now, today and the current month in the unit's time zone.
//! - [`store`]: the [`store::Store`] trait, RocksDB and in-memory engines,
//!   the fallible scans every typed read goes through ([`store::try_scan`],
//!   [`store::collect`]), and the layout ([`store::layout`]: keys, rows,
//!   typed reads).
//! - [`ledger`]: the store with its writer lock and change signal.
//! - [`identity`]: the unit's code, name and (rotatable) signing key.
//! - [`context`]: [`context::NodeContext`], what every part of a running
//!   node shares (ledger, identity, clock, trust); trust changes only after
//!   the write that makes them durable.
//! - [`federation`]: enrolment, verified submissions from children, and the
//!   pusher that sends this node's revisions to its parent.
//! - [`records`]: the rules cases, tasks and direct tallies must meet.
//! - [`intake`]: checking and storing records in synced batches: the
//!   service ([`intake::Intake`]), what it answers ([`intake::Outcome`],
//!   [`intake::IntakeError`]), the row checks, and bulk imports
//!   ([`intake::import`]: the session, its staging, repeated ids).
//! - [`signer`]: debounced signing of new summary revisions, and the
//!   derivation of a month's local tally from the records
//!   ([`signer::tally`]).
//! - [`query`]: figures of the subtree from signed summaries.
//! - [`findings`]: the data-quality findings of the subtree, kept current
//!   as the node signs.
//! - [`evidence`]: evidence bundles and inclusion proofs for auditors.
//! - [`faults`]: kill points for fault-injection tests (`TALLYTREE_KILL_AT`).
//! - [`error`]: [`error::ErrorCode`], the one mapping of every service
//!   error to what a caller is told.
//! - [`access`]: named credentials (hashes only) and which role may make
//!   which call.
//! - [`tls`]: the unit's TLS key and CA, the certificates it issues, the
//!   TLS server and the check that a submitting peer is the enrolled child.
//! - [`overload`]: concurrency limits that shed load, and per-party rate
//!   limits for Submit and intake.
//! - [`grpc`]: thin tonic adapters and the credential guard.
//! - [`server`]: [`Node`], wiring it all together; [`Node::run`] serves
//!   until shutdown.
//!
//! Without the `server` feature (on by default) the crate is only what a
//! node's tools need: [`config`], [`clock`], [`identity`], [`records`],
//! the credentials file of [`access`] and the TLS material of [`tls`].

pub mod access;
pub mod clock;
pub mod config;
#[cfg(feature = "server")]
pub mod console;
#[cfg(feature = "server")]
pub mod context;
#[cfg(feature = "server")]
pub mod error;
#[cfg(feature = "server")]
pub mod evidence;
#[cfg(feature = "server")]
pub mod faults;
#[cfg(feature = "server")]
pub mod federation;
#[cfg(feature = "server")]
pub mod findings;
#[cfg(feature = "server")]
pub mod grpc;
pub mod identity;
#[cfg(feature = "server")]
pub mod intake;
#[cfg(feature = "server")]
pub mod ledger;
#[cfg(feature = "server")]
pub mod overload;
#[cfg(feature = "server")]
pub mod query;
pub mod records;
#[cfg(feature = "server")]
pub mod server;
pub mod sheet;
#[cfg(feature = "server")]
pub mod signer;
#[cfg(feature = "server")]
pub mod store;
pub mod tls;

#[cfg(feature = "server")]
pub use server::{Node, NodeError};
