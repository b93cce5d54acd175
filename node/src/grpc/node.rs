//! `tallytree.v1.Node`: who this node is, read from its [`Identity`].

use std::sync::Arc;

use tallytree_proto::pb::{self, node_server::Node as NodeRpc};
use tonic::{Request, Response, Status};

use crate::identity::Identity;

/// The Node gRPC service.
#[derive(Debug, Clone)]
pub struct NodeService {
    /// The unit and its current key (rotation swaps the key in place).
    identity: Arc<Identity>,
}

impl NodeService {
    /// Answers for `identity`.
    pub fn new(identity: Arc<Identity>) -> NodeService {
        NodeService { identity }
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
}
