//! The `tallytree` command line as a library, so the binary stays a thin
//! argument parser and tests can drive each command.
//!
//! # Layout
//!
//! - [`conn`]: reaching a node (URL, token, or its config file).
//! - [`init`], [`keys`]: a unit's key and config.
//! - [`enrol`]: enrolment, key rotation, revocation, the trust anchor.
//! - [`import`], [`record`]: intake from spreadsheets (read by the node crate's
//!   `sheet`, which the console's upload shares) and single entries.
//! - [`query`], [`table`]: figures as aligned tables, JSON or CSV.
//! - [`audit`]: signed revisions and their verification.
//! - [`evidence`]: evidence bundles and inclusion proofs: export, offline verification.
//! - [`demo`]: a five-level federation of real node processes on loopback.
//! - `fuzzing` (hidden): the fuzz targets' bodies, replayed by `tests/fuzz_replay.rs`.

pub mod audit;
pub mod conn;
pub mod demo;
pub mod enrol;
pub mod evidence;
pub mod findings;
#[doc(hidden)]
pub mod fuzzing;
pub mod import;
pub mod init;
pub mod keys;
pub mod query;
pub mod record;
pub mod root;
pub mod table;
pub mod token;
