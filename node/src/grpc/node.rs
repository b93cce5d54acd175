//! `tallytree.v1.Node`: who this node is, read from its [`Identity`], and
//! its roots of trust.

use std::sync::Arc;

use tallytree_proto::pb::{self, node_server::Node as NodeRpc};
use tonic::{Request, Response, Status};

use super::{blocking, status};
use crate::{federation::Roots, identity::Identity};

/// The Node gRPC service.
#[derive(Debug, Clone)]
pub struct NodeService {
    /// The unit and its current key (rotation swaps the key in place).
    identity: Arc<Identity>,
    /// Its roots of trust, at the top.
    roots: Roots,
}

impl NodeService {
    /// Answers for `identity` and its `roots`.
    pub fn new(identity: Arc<Identity>, roots: Roots) -> NodeService {
        NodeService { identity, roots }
    }
}

#[tonic::async_trait]
impl NodeRpc for NodeService {
    async fn identity(
        &self,
        _request: Request<pb::IdentityRequest>,
    ) -> Result<Response<pb::IdentityResponse>, Status> {
        let key = self.identity.public_key();
        Ok(Response::new(pb::IdentityResponse {
            region: self.identity.region.to_string(),
            name: self.identity.name.clone(),
            key_id: key.key_id(),
            public_key: key.0.to_vec(),
        }))
    }

    async fn roots(
        &self,
        _request: Request<pb::RootsRequest>,
    ) -> Result<Response<pb::RootsResponse>, Status> {
        let roots = self.roots.clone();
        let roots = blocking(move || roots.list().map_err(status)).await?;
        Ok(Response::new(pb::RootsResponse { roots }))
    }
}
