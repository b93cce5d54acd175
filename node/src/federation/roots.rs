//! The top unit's roots of trust: installed one version at a time (version
//! 1 verified by its own keys, each later one by the previous root's and its
//! own), kept in the meta column family, and carried in every evidence
//! bundle and proof so that an auditor who pinned an earlier root walks to
//! the latest. A root naming the rotated key waiting beside the node's key
//! switches the node to it, with a key succession for its children.

use std::sync::Arc;

use tallytree_aggregator::root::RootView;
use tallytree_proto::{pb, statement};
use tracing::info;

use super::{enrolment::EnrolmentError, succession::Rotation};
use crate::{
    context::{NodeContext, TrustChange},
    store::{Batch, Cf, Store, StoreError, layout},
};

/// Prefix of the roots in the meta column family (followed by the version,
/// u64 BE); value: the envelope.
const PREFIX: &[u8] = b"root/";

/// The roots of this node, the top of its tree.
#[derive(Debug, Clone)]
pub struct Roots {
    ctx: Arc<NodeContext>,
}

/// Every root installed, oldest first.
pub fn chain(store: &dyn Store) -> Result<Vec<pb::Envelope>, StoreError> {
    layout::envelopes(store, Cf::Meta, PREFIX)
}

fn invalid(msg: String) -> EnrolmentError {
    EnrolmentError::Invalid(msg)
}

impl Roots {
    /// The roots of the node of `ctx`.
    pub fn new(ctx: Arc<NodeContext>) -> Roots {
        Roots { ctx }
    }

    /// Installs the next root. Blocking.
    pub fn install(&self, req: &pb::InstallRootRequest) -> Result<(), EnrolmentError> {
        let ctx = &self.ctx;
        if ctx.identity.region.parent().is_some() {
            return Err(invalid(format!(
                "root: {} is not the top of its tree; only the top unit has roots (its parent enrols it)",
                ctx.identity.region
            )));
        }
        let env = req
            .root
            .as_ref()
            .ok_or_else(|| invalid("root: required".into()))?;
        let _writer = ctx.ledger.lock();
        let held = chain(ctx.ledger.store())?;
        let root = match held.last() {
            None => RootView::pinned(env),
            Some(latest) => RootView::from_envelope(latest).and_then(|latest| latest.next(env)),
        }
        .map_err(|e| invalid(e.to_string()))?;
        if root.region != ctx.identity.region {
            return Err(invalid(format!(
                "root: is the root of {}, not of this node ({})",
                root.region, ctx.identity.region
            )));
        }
        if let Some(first) = held.first()
            && statement::peek_unverified::<pb::Root>(first).is_ok_and(|f| f.version != 1)
        {
            return Err(invalid(
                "root: the chain held does not start at version 1".into(),
            ));
        }
        if held.is_empty() && root.version != 1 {
            return Err(invalid(format!(
                "root: version {} cannot be the first; install version 1 first",
                root.version
            )));
        }
        let rotation = Rotation::to(ctx, root.node_key, "root: node_key")?;
        let old = ctx.identity.public_key();
        ctx.admit(|_| {
            let mut batch = Batch::default();
            let mut key = PREFIX.to_vec();
            key.extend_from_slice(&root.version.to_be_bytes());
            batch.put(Cf::Meta, key, layout::envelope_bytes(env));
            if let Some(r) = &rotation {
                r.store_in(&mut batch);
            }
            Ok::<_, EnrolmentError>(TrustChange {
                own_keys: vec![old, root.node_key],
                batch,
                ..TrustChange::default()
            })
        })?;
        if rotation.is_some() {
            ctx.identity
                .rotate()
                .map_err(|err| invalid(format!("rotating the key: {err}")))?;
            info!(key = %&root.node_key.key_id()[..16], "rotated to the key the new root names");
        }
        info!(
            version = root.version,
            keys = root.keys.len(),
            threshold = root.threshold,
            "root installed"
        );
        Ok(())
    }

    /// Every root installed, oldest first.
    pub fn list(&self) -> Result<Vec<pb::Envelope>, StoreError> {
        chain(self.ctx.ledger.store())
    }
}
