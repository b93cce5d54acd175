//! `tallytree.v1.Query` over [`crate::query::Query`].

use tallytree_proto::{
    PeriodRange, RegionCode,
    pb::{self, query_server::Query as QueryRpc},
};
use tonic::{Request, Response, Status};

use tallytree_aggregator::findings::Filter;

use super::{blocking, status};
use crate::query::{Query, QueryError};

/// The Query gRPC service.
#[derive(Debug, Clone)]
pub struct QueryService {
    /// The domain service.
    query: Query,
}

impl QueryService {
    /// Serves `query`.
    pub fn new(query: Query) -> QueryService {
        QueryService { query }
    }
}

/// Parses an optional region field.
pub(crate) fn optional_region(s: &str) -> Result<Option<RegionCode>, Status> {
    if s.is_empty() {
        return Ok(None);
    }
    RegionCode::parse(s).map(Some).map_err(status)
}

#[tonic::async_trait]
impl QueryRpc for QueryService {
    async fn tally(
        &self,
        request: Request<pb::TallyRequest>,
    ) -> Result<Response<pb::TallyResponse>, Status> {
        let req = request.into_inner();
        let region = optional_region(&req.region)?;
        let range = PeriodRange::parse(&req.period).map_err(status)?;
        let query = self.query.clone();
        let depth = req.depth;
        blocking(move || query.tally(region, range, depth).map_err(status))
            .await
            .map(Response::new)
    }

    async fn findings(
        &self,
        request: Request<pb::FindingsRequest>,
    ) -> Result<Response<pb::FindingsResponse>, Status> {
        let req = request.into_inner();
        let filter = Filter::parse(&req.region, &req.period, &req.rule, &req.severity)
            .map_err(|e| status(QueryError::from(e)))?;
        let query = self.query.clone();
        blocking(move || query.findings(&filter).map_err(status))
            .await
            .map(Response::new)
    }
}
