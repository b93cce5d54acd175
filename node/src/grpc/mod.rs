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
pub use auth::OperatorAuth;
pub use federation::{EnrolmentsService, FederationService};
pub use intake::IntakeService;
pub use node::NodeService;
pub use query::QueryService;
use tonic::Status;
use tracing::error;

use crate::{query::QueryError, store::StoreError};

/// Storage failures are the node's problem, not the caller's: INTERNAL, logged.
pub(crate) fn store_status(e: StoreError) -> Status {
    error!(error = %e, "storage failure");
    Status::internal(e.to_string())
}

pub(crate) fn query_status(e: QueryError) -> Status {
    match e {
        QueryError::OutsideSubtree { .. } | QueryError::NotCounted(_) => {
            Status::not_found(e.to_string())
        }
        QueryError::Depth(_) => Status::invalid_argument(e.to_string()),
        QueryError::Store(e) => store_status(e),
    }
}

/// Runs blocking work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
}
