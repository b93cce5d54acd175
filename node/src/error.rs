//! What a caller is told when the node refuses or fails: every error of the
//! node's services says its [`ErrorCode`] once, here or next to its type;
//! the gRPC layer turns the code into a `tonic::Code` in one place
//! (`grpc::status`), and a web layer would turn it into an HTTP status the
//! same way.

use tallytree_aggregator::Defect;
use tallytree_proto::{PeriodError, RegionError};

use crate::{
    federation::{enrolment::EnrolmentError, submit::SubmitError},
    intake::IntakeError,
    query::QueryError,
    store::StoreError,
};

/// The kinds of refusal and failure a caller can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request breaks a rule: a malformed field, figures that do not add
    /// up. The message names the field and the rule.
    InvalidArgument,
    /// The signer may not say this: an unknown, revoked or wrong key, a unit
    /// speaking for another.
    PermissionDenied,
    /// Something the request depends on is missing (a child summary it
    /// references and this node does not hold).
    FailedPrecondition,
    /// What is asked for is not here.
    NotFound,
    /// A conflicting statement is held (equivocation).
    AlreadyExists,
    /// The node or the caller's share of it is busy: retry with backoff.
    ResourceExhausted,
    /// The caller has not shown who it is: no credential or client
    /// certificate, or one this node does not know.
    Unauthenticated,
    /// The node failed (storage): not the caller's fault; logged.
    Internal,
    /// The node cannot do it now (its disk is full): retry later; logged.
    Unavailable,
}

/// An error of one of the node's services.
pub trait ServiceError: std::fmt::Display {
    /// Its code.
    fn error_code(&self) -> ErrorCode;
}

/// A full disk is the node's, passing: UNAVAILABLE, retry later; any other
/// storage failure is INTERNAL.
impl ServiceError for StoreError {
    fn error_code(&self) -> ErrorCode {
        match self {
            StoreError::Full(_) => ErrorCode::Unavailable,
            StoreError::Engine(_) | StoreError::Corrupt { .. } => ErrorCode::Internal,
        }
    }
}

impl ServiceError for RegionError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
    }
}

impl ServiceError for PeriodError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::InvalidArgument
    }
}

/// Key problems deny permission, a missing child summary is a failed
/// precondition, everything else breaks a rule of the protocol.
impl ServiceError for Defect {
    fn error_code(&self) -> ErrorCode {
        match self {
            Defect::UnknownKey { .. }
            | Defect::Unsigned { .. }
            | Defect::ManySignatures { .. }
            | Defect::WrongSigner { .. }
            | Defect::Revoked { .. }
            | Defect::NotYetValid { .. }
            | Defect::Envelope { .. } => ErrorCode::PermissionDenied,
            Defect::MissingChild { .. } => ErrorCode::FailedPrecondition,
            Defect::Summary(_)
            | Defect::Tree { .. }
            | Defect::ChildMismatch { .. }
            | Defect::Completeness { .. } => ErrorCode::InvalidArgument,
        }
    }
}

impl ServiceError for SubmitError {
    fn error_code(&self) -> ErrorCode {
        match self {
            SubmitError::Invalid(_) => ErrorCode::InvalidArgument,
            SubmitError::Defect(f) => f.error_code(),
            SubmitError::NotChild { .. } => ErrorCode::PermissionDenied,
            SubmitError::Equivocation { .. } => ErrorCode::AlreadyExists,
            SubmitError::Superseded { .. } => ErrorCode::FailedPrecondition,
            SubmitError::Peer(e) => e.error_code(),
            SubmitError::Store(e) => e.error_code(),
        }
    }
}

impl ServiceError for EnrolmentError {
    fn error_code(&self) -> ErrorCode {
        match self {
            EnrolmentError::Invalid(_) => ErrorCode::InvalidArgument,
            EnrolmentError::Defect(f) => f.error_code(),
            EnrolmentError::Store(e) => e.error_code(),
        }
    }
}

impl ServiceError for QueryError {
    fn error_code(&self) -> ErrorCode {
        match self {
            QueryError::OutsideSubtree { .. } | QueryError::NotCounted(_) => ErrorCode::NotFound,
            QueryError::Depth(_) | QueryError::Filter(_) => ErrorCode::InvalidArgument,
            QueryError::Store(e) => e.error_code(),
        }
    }
}

/// Refused input is the caller's to fix; a storage failure is the node's.
impl ServiceError for IntakeError {
    fn error_code(&self) -> ErrorCode {
        match self {
            IntakeError::Refused(_) => ErrorCode::InvalidArgument,
            IntakeError::Store(e) => e.error_code(),
        }
    }
}
