//! `tallytree.v1.Audit`: signed revisions, evidence bundles and inclusion
//! proofs, streamed.

use std::pin::Pin;

use tallytree_proto::{
    Month, PeriodRange,
    pb::{self, audit_server::Audit as AuditRpc},
};
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use super::{blocking, query::optional_region, status};
use crate::{evidence::Evidence, query::Query};

/// Items in flight between the exporting thread and the gRPC stream.
const STREAM_BUFFER: usize = 256;

/// The Audit gRPC service.
#[derive(Debug, Clone)]
pub struct AuditService {
    /// Reads the stored summaries.
    query: Query,
    /// Exports bundles and proofs.
    evidence: Evidence,
}

impl AuditService {
    /// Serves `query` and `evidence`.
    pub fn new(query: Query, evidence: Evidence) -> AuditService {
        AuditService { query, evidence }
    }
}

type ItemStream = Pin<Box<dyn Stream<Item = Result<pb::EvidenceItem, Status>> + Send>>;

/// Runs `produce` on a blocking thread, streaming what it emits.
fn stream_from(
    produce: impl FnOnce(&mut dyn FnMut(pb::EvidenceItem) -> bool) -> Result<(), Status>
    + Send
    + 'static,
) -> ItemStream {
    let (tx, rx) = tokio::sync::mpsc::channel(STREAM_BUFFER);
    tokio::task::spawn_blocking(move || {
        let mut sink = |item| tx.blocking_send(Ok(item)).is_ok();
        if let Err(status) = produce(&mut sink) {
            let _ = tx.blocking_send(Err(status));
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

#[tonic::async_trait]
impl AuditRpc for AuditService {
    async fn revisions(
        &self,
        request: Request<pb::RevisionsRequest>,
    ) -> Result<Response<pb::RevisionsResponse>, Status> {
        let req = request.into_inner();
        let region = optional_region(&req.region)?.unwrap_or(self.query.region());
        let month = Month::parse(&req.period).map_err(status)?;
        let query = self.query.clone();
        let summaries = blocking(move || query.revisions(region, month).map_err(status)).await?;
        Ok(Response::new(pb::RevisionsResponse { summaries }))
    }

    type ExportEvidenceStream = ItemStream;

    async fn export_evidence(
        &self,
        request: Request<pb::ExportEvidenceRequest>,
    ) -> Result<Response<Self::ExportEvidenceStream>, Status> {
        let req = request.into_inner();
        let region = optional_region(&req.region)?.unwrap_or(self.query.region());
        let range = PeriodRange::parse(&req.period).map_err(status)?;
        let evidence = self.evidence.clone();
        Ok(Response::new(stream_from(move |sink| {
            evidence
                .export_evidence(region, range, sink)
                .map_err(status)
        })))
    }

    type ProveStream = ItemStream;

    async fn prove(
        &self,
        request: Request<pb::ProveRequest>,
    ) -> Result<Response<Self::ProveStream>, Status> {
        let req = request.into_inner();
        let region = optional_region(&req.region)?
            .ok_or_else(|| Status::invalid_argument("region: required (the unit to prove)"))?;
        let month = Month::parse(&req.period).map_err(status)?;
        let evidence = self.evidence.clone();
        Ok(Response::new(stream_from(move |sink| {
            evidence.prove(region, month, sink).map_err(status)
        })))
    }
}
