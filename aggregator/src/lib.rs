//! Pure tallytree logic, no I/O: tallies and their invariants, the derivation
//! of a unit's tally from its records, and the checks on signed summaries.
//! Parent nodes and auditors run this very code, so what a parent accepts and
//! what an auditor verifies cannot drift apart.
//!
//! # Layout
//!
//! - [`admission`]: checking enrolments and revocations before trusting
//!   them, so a node trusts them only once they are durable.
//! - [`audit`]: offline verification of evidence bundles and inclusion proofs.
//! - [`bundle`]: reading and writing evidence bundle files.
//! - [`tally`]: [`Tally`] (case and task counts per category), its invariants,
//!   addition and derived [`Rates`].
//! - [`parallel`]: ordered mapping on several threads.
//! - [`derive`]: the local tally of a month from case and task records.
//! - [`summary`]: a decoded, checked [`SummaryView`] of a signed summary, the
//!   roll-up arithmetic, and building the summary a node signs.
//! - [`verify`]: [`Trust`] (which keys speak for which regions, from an anchor
//!   down the enrolment chain) and [`verify_tree`], the recursive check of a
//!   summary with every descendant it counts.

pub mod admission;
pub mod audit;
pub mod bundle;
pub mod derive;
pub mod parallel;
pub mod summary;
pub mod tally;
pub mod verify;

pub use admission::Admission;
pub use derive::{CaseRecord, CaseState, TaskRecord, TaskState};
pub use summary::{ChildEntry, SummaryError, SummaryView};
pub use tally::{CaseCounts, Rates, Tally, TallyError, TaskCounts};
pub use verify::{
    Candidate, EnrolmentView, Finding, RevocationView, SummarySource, Trust, Verified,
    verify_opened, verify_tree,
};
