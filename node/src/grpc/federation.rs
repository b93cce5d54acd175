//! `tallytree.v1.Federation` and `tallytree.v1.Enrolments` over
//! [`crate::federation::Federation`].

use std::sync::Arc;

use tallytree_aggregator::{Finding, SummaryError};
use tallytree_proto::pb::{
    self, enrolments_server::Enrolments as EnrolmentsRpc,
    federation_server::Federation as FederationRpc,
};
use tonic::{Request, Response, Status};

use super::{blocking, store_status};
use crate::federation::{Federation, enrolment::EnrolmentError, submit::SubmitError};

/// The Federation gRPC service (children submit here; signatures authenticate).
#[derive(Debug, Clone)]
pub struct FederationService {
    /// The domain service.
    fed: Arc<Federation>,
}

/// The Enrolments gRPC service (operator only).
#[derive(Debug, Clone)]
pub struct EnrolmentsService {
    /// The domain service.
    fed: Arc<Federation>,
}

impl FederationService {
    /// Serves `fed`.
    pub fn new(fed: Arc<Federation>) -> FederationService {
        FederationService { fed }
    }
}

impl EnrolmentsService {
    /// Serves `fed`.
    pub fn new(fed: Arc<Federation>) -> EnrolmentsService {
        EnrolmentsService { fed }
    }
}

/// The status of a finding: key problems are PERMISSION_DENIED, missing
/// evidence FAILED_PRECONDITION, everything else INVALID_ARGUMENT.
pub(crate) fn finding_status(f: &Finding) -> Status {
    let msg = f.to_string();
    match f {
        Finding::UnknownKey { .. }
        | Finding::Unsigned { .. }
        | Finding::ManySignatures { .. }
        | Finding::WrongSigner { .. }
        | Finding::Revoked { .. }
        | Finding::NotYetValid { .. }
        | Finding::Envelope { .. } => Status::permission_denied(msg),
        Finding::MissingChild { .. } => Status::failed_precondition(msg),
        Finding::Summary(SummaryError::FuturePeriod { .. })
        | Finding::Summary(_)
        | Finding::Tree { .. }
        | Finding::ChildMismatch { .. }
        | Finding::Completeness { .. } => Status::invalid_argument(msg),
    }
}

fn submit_status(e: SubmitError) -> Status {
    match e {
        SubmitError::Invalid(m) => Status::invalid_argument(m),
        SubmitError::Finding(f) => finding_status(&f),
        e @ SubmitError::NotChild { .. } => Status::permission_denied(e.to_string()),
        e @ SubmitError::Equivocation { .. } => Status::already_exists(e.to_string()),
        SubmitError::Store(e) => store_status(e),
    }
}

fn enrolment_status(e: EnrolmentError) -> Status {
    match e {
        EnrolmentError::Invalid(m) => Status::invalid_argument(m),
        EnrolmentError::Finding(f) => finding_status(&f),
        EnrolmentError::Store(e) => store_status(e),
    }
}

#[tonic::async_trait]
impl FederationRpc for FederationService {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let req = request.into_inner();
        let fed = self.fed.clone();
        let receipt = blocking(move || fed.submit(&req).map_err(submit_status)).await?;
        Ok(Response::new(pb::SubmitResponse {
            receipt: Some(receipt),
        }))
    }
}

#[tonic::async_trait]
impl EnrolmentsRpc for EnrolmentsService {
    async fn enrol(
        &self,
        request: Request<pb::EnrolRequest>,
    ) -> Result<Response<pb::EnrolResponse>, Status> {
        let req = request.into_inner();
        let fed = self.fed.clone();
        let env = blocking(move || fed.enrol(&req).map_err(enrolment_status)).await?;
        Ok(Response::new(pb::EnrolResponse {
            enrolment: Some(env),
            parent_public_key: self.fed.identity.public_key().0.to_vec(),
        }))
    }

    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        let req = request.into_inner();
        let fed = self.fed.clone();
        let env = blocking(move || fed.revoke(&req).map_err(enrolment_status)).await?;
        Ok(Response::new(pb::RevokeResponse {
            revocation: Some(env),
        }))
    }

    async fn install(
        &self,
        request: Request<pb::InstallRequest>,
    ) -> Result<Response<pb::InstallResponse>, Status> {
        let req = request.into_inner();
        let fed = self.fed.clone();
        blocking(move || fed.install(&req).map_err(enrolment_status)).await?;
        Ok(Response::new(pb::InstallResponse {}))
    }

    async fn list(
        &self,
        _request: Request<pb::ListEnrolmentsRequest>,
    ) -> Result<Response<pb::ListEnrolmentsResponse>, Status> {
        let fed = self.fed.clone();
        blocking(move || fed.list().map_err(store_status))
            .await
            .map(Response::new)
    }
}
