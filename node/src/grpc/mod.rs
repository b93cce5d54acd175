//! The gRPC layer: thin adapters from tonic to the node's domain services.
//! Each converts the request, runs the service (on a blocking thread when it
//! touches storage) and maps errors to a `Status` naming the field and rule.

mod audit;
mod auth;
mod federation;
mod intake;
mod node;
mod query;

pub use audit::AuditService;
pub use auth::Guard;
pub use federation::{EnrolmentsService, FederationService};
pub use intake::IntakeService;
pub use node::NodeService;
pub use query::QueryService;
use tonic::{Code, Status};
use tracing::error;

use crate::error::{ErrorCode, ServiceError};

impl From<ErrorCode> for Code {
    fn from(code: ErrorCode) -> Code {
        match code {
            ErrorCode::InvalidArgument => Code::InvalidArgument,
            ErrorCode::PermissionDenied => Code::PermissionDenied,
            ErrorCode::FailedPrecondition => Code::FailedPrecondition,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::Unauthenticated => Code::Unauthenticated,
            ErrorCode::ResourceExhausted => Code::ResourceExhausted,
            ErrorCode::Internal => Code::Internal,
            ErrorCode::Unavailable => Code::Unavailable,
        }
    }
}

/// The status of a service error, with its message (naming the field and
/// the rule). The node's own failures are logged: they are its operator's
/// problem, not the caller's.
pub(crate) fn status(e: impl ServiceError) -> Status {
    let code = e.error_code();
    // The node's own failures are logged in full and told to the caller
    // without the node's internals (paths, engine messages).
    let message = match code {
        ErrorCode::Internal => {
            error!(error = %e, "internal failure");
            "internal failure at the node; nothing was stored (its log has the details)".to_owned()
        }
        ErrorCode::Unavailable => {
            error!(error = %e, "storage full");
            "the node's storage is full: nothing was stored; retry later".to_owned()
        }
        _ => e.to_string(),
    };
    Status::new(code.into(), message)
}

/// Runs blocking work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
}
