//! `tallytree.v1.Federation` and `tallytree.v1.Enrolments` over
//! [`crate::federation::Submissions`] and [`crate::federation::Enrolments`].

use std::sync::Arc;

use tallytree_proto::pb::{
    self, enrolments_server::Enrolments as EnrolmentsRpc,
    federation_server::Federation as FederationRpc,
};
use tonic::{Request, Response, Status};

use super::{blocking, status};
use crate::{
    federation::{Enrolments, Roots, Submissions},
    overload::RateLimiter,
    tls::peer::Peer,
};

/// The Federation gRPC service (children submit here, over TLS with their
/// enrolled certificate; signatures authenticate what they submit).
#[derive(Debug, Clone)]
pub struct FederationService {
    /// The domain service.
    submissions: Arc<Submissions>,
    /// How often one child may submit.
    rate: Arc<RateLimiter>,
}

/// The Enrolments gRPC service (operator only).
#[derive(Debug, Clone)]
pub struct EnrolmentsService {
    /// The domain service.
    enrolments: Enrolments,
    /// The roots of trust, at the top.
    roots: Roots,
}

impl FederationService {
    /// Serves `submissions`, each child limited by `rate`.
    pub fn new(submissions: Arc<Submissions>, rate: Arc<RateLimiter>) -> FederationService {
        FederationService { submissions, rate }
    }
}

impl EnrolmentsService {
    /// Serves `enrolments` and `roots`.
    pub fn new(enrolments: Enrolments, roots: Roots) -> EnrolmentsService {
        EnrolmentsService { enrolments, roots }
    }
}

#[tonic::async_trait]
impl FederationRpc for FederationService {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let peer = Peer::of(&request);
        // A child by its certificate's key; anyone else by address.
        let party = match &peer {
            Peer::Certified { spki } => format!("TLS key {}", spki.short()),
            _ => request
                .remote_addr()
                .map_or_else(|| "an unknown peer".to_owned(), |a| a.ip().to_string()),
        };
        self.rate
            .check(&party, std::time::Instant::now())
            .map_err(status)?;
        let req = request.into_inner();
        let submissions = self.submissions.clone();
        let (receipt, successions) = blocking(move || {
            let receipt = submissions.submit(&req, &peer).map_err(status)?;
            Ok((receipt, submissions.successions().map_err(status)?))
        })
        .await?;
        crate::faults::kill_point_later("submit-after-reply", 50);
        Ok(Response::new(pb::SubmitResponse {
            receipt: Some(receipt),
            successions,
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
        let enrolments = self.enrolments.clone();
        let enrolled = blocking(move || enrolments.enrol(&req).map_err(status)).await?;
        Ok(Response::new(pb::EnrolResponse {
            enrolment: Some(enrolled.enrolment),
            parent_public_key: self.enrolments.public_key().0.to_vec(),
            client_certificate: enrolled.client_certificate,
            parent_ca_certificate: enrolled.ca_certificate,
        }))
    }

    async fn revoke(
        &self,
        request: Request<pb::RevokeRequest>,
    ) -> Result<Response<pb::RevokeResponse>, Status> {
        let req = request.into_inner();
        let enrolments = self.enrolments.clone();
        let env = blocking(move || enrolments.revoke(&req).map_err(status)).await?;
        Ok(Response::new(pb::RevokeResponse {
            revocation: Some(env),
        }))
    }

    async fn install(
        &self,
        request: Request<pb::InstallRequest>,
    ) -> Result<Response<pb::InstallResponse>, Status> {
        let req = request.into_inner();
        let enrolments = self.enrolments.clone();
        blocking(move || enrolments.install(&req).map_err(status)).await?;
        Ok(Response::new(pb::InstallResponse {}))
    }

    async fn install_root(
        &self,
        request: Request<pb::InstallRootRequest>,
    ) -> Result<Response<pb::InstallRootResponse>, Status> {
        let req = request.into_inner();
        let roots = self.roots.clone();
        blocking(move || roots.install(&req).map_err(status)).await?;
        Ok(Response::new(pb::InstallRootResponse {}))
    }

    async fn list(
        &self,
        _request: Request<pb::ListEnrolmentsRequest>,
    ) -> Result<Response<pb::ListEnrolmentsResponse>, Status> {
        let enrolments = self.enrolments.clone();
        blocking(move || enrolments.list().map_err(status))
            .await
            .map(Response::new)
    }
}
