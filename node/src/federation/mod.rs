//! The federation: enrolment of children, verified submissions from them
//! (the parent side), and the push of this node's revisions to its parent
//! (the child side). Every service holds the node's
//! [`crate::context::NodeContext`]; all checks are the aggregator's, shared
//! with auditors.
//!
//! - [`enrolment`]: [`Enrolments`]: enrol, rotate and revoke children;
//!   install this node's own enrolment.
//! - [`submit`]: [`Submissions`]: Federation.Submit at the parent: verify,
//!   store durably, receipt.
//! - `revisions`: the revision rules of one child and month (a verdict the
//!   submission acts on), under its stripe.
//! - [`pusher`]: the outbox pusher with timeout, retry and backoff.
//! - [`roots`]: [`Roots`]: the top unit's roots of trust.
//! - [`succession`]: rotating this node's own key, and the key successions
//!   a child follows to its parent's new key.

pub mod enrolment;
pub mod pusher;
mod revisions;
pub mod roots;
pub mod submit;
pub mod succession;

pub use enrolment::Enrolments;
pub use roots::Roots;
pub use submit::Submissions;
