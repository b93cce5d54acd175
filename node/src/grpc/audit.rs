//! `tallytree.v1.Audit`: the signed revisions a node holds.

use tallytree_proto::{
    Month,
    pb::{self, audit_server::Audit as AuditRpc},
};
use tonic::{Request, Response, Status};

use super::{blocking, query::optional_region, query_status};
use crate::query::Query;

/// The Audit gRPC service.
#[derive(Debug, Clone)]
pub struct AuditService {
    /// Reads the stored summaries.
    query: Query,
    /// This node's region, the default.
    region: tallytree_proto::RegionCode,
}

impl AuditService {
    /// Serves the summaries `query` reads, defaulting to `region`.
    pub fn new(query: Query, region: tallytree_proto::RegionCode) -> AuditService {
        AuditService { query, region }
    }
}

#[tonic::async_trait]
impl AuditRpc for AuditService {
    async fn revisions(
        &self,
        request: Request<pb::RevisionsRequest>,
    ) -> Result<Response<pb::RevisionsResponse>, Status> {
        let req = request.into_inner();
        let region = optional_region(&req.region)?.unwrap_or(self.region);
        let month =
            Month::parse(&req.period).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let query = self.query.clone();
        let summaries =
            blocking(move || query.revisions(region, month).map_err(query_status)).await?;
        Ok(Response::new(pb::RevisionsResponse { summaries }))
    }
}
