//! Pure tallytree logic, no I/O: tallies and their invariants, the derivation
//! of a unit's tally from its records, and the checks on signed summaries.
//! Parent nodes and auditors run this very code, so what a parent accepts and
//! what an auditor verifies cannot drift apart.
//!
//! # Layout
//!
//! - [`tally`]: [`Tally`] (case and task counts per category), its invariants,
//!   addition and derived [`Rates`].
//! - [`derive`](mod@derive): the local tally of a month from case and task records.
//! - [`summary`]: a decoded, checked [`SummaryView`] of a signed summary, the
//!   total's arithmetic, and building the summary a node signs.
//! - [`defect`]: [`Defect`], what is wrong with a statement, the same for
//!   parents, auditors and proofs.
//! - [`findings`]: data-quality findings (需核实) computed from signed
//!   summaries, the same at a parent and for an auditor.
//! - [`stated`]: rates and totals as hand-made reports state them, checked
//!   against their own counts (GRIM, truncation, another base, sums).
//! - [`trust`]: [`Trust`] (which keys speak for which regions, from an anchor
//!   down the enrolment chain) and the [`TrustedKey`] that verifies a
//!   statement's signature and content.
//! - [`rollup`]: the roll-up rules written once: each child reference
//!   matched, the total, completeness.
//! - [`verify`]: [`verify_tree`], a parent's recursive check of a summary
//!   with every descendant it counts.
//! - [`admission`]: checking enrolments and revocations before trusting
//!   them, so a node trusts them only once they are durable.
//! - [`audit`]: offline verification of evidence bundles and inclusion proofs.
//! - [`bundle`]: reading and writing evidence bundle files, and the trailer
//!   digest every writer and reader computes.
//! - [`parallel`]: ordered mapping on several threads.

pub mod admission;
pub mod audit;
pub mod bundle;
pub mod defect;
pub mod derive;
pub mod findings;
pub mod parallel;
pub mod rollup;
pub mod root;
pub mod stated;
pub mod summary;
pub mod tally;
pub mod trust;
pub mod verify;

pub use admission::Admission;
pub use defect::{Absence, Defect, Mismatch};
pub use derive::{CaseRecord, CaseState, TaskRecord, TaskState};
pub use summary::{ChildEntry, SummaryError, SummaryView};
pub use tally::{CaseCounts, Rates, Tally, TallyError, TaskCounts};
pub use trust::{EnrolmentView, RevocationView, Trust, TrustedKey};
pub use verify::{Candidate, SummarySource, Verified, verify_opened, verify_tree};
