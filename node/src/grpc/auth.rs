//! The credential check on every call that needs one: a tonic interceptor
//! over [`Access`], one per service with the [`Action`] its calls are.
//! Tokens are never logged; the credential's name is, at debug level.

use std::sync::Arc;

use tonic::{Request, Status, service::Interceptor};
use tracing::debug;

use super::status;
use crate::{
    access::{Access, Action, Allowed},
    overload::RateLimiter,
};

/// Checks the `authorization` header of each call against the node's
/// credentials.
#[derive(Clone, Debug)]
pub struct Guard {
    /// The credentials and rule.
    access: Arc<Access>,
    /// What the guarded service's calls do.
    action: Action,
    /// How often one credential may call, if limited.
    rate: Option<Arc<RateLimiter>>,
}

impl Guard {
    /// Guards calls of `action`.
    pub fn new(access: Arc<Access>, action: Action) -> Guard {
        Guard {
            access,
            action,
            rate: None,
        }
    }

    /// The same guard, each credential limited by `rate`.
    pub fn with_rate_limit(mut self, rate: Arc<RateLimiter>) -> Guard {
        self.rate = Some(rate);
        self
    }
}

impl Interceptor for Guard {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or_default());
        let allowed = self.access.authorize(header, self.action).map_err(status)?;
        if let Allowed::Credential { name, role } = &allowed {
            if let Some(rate) = &self.rate {
                rate.check(&format!("credential {name}"), std::time::Instant::now())
                    .map_err(status)?;
            }
            debug!(credential = %name, %role, action = ?self.action, "call allowed");
        }
        request.extensions_mut().insert(allowed);
        Ok(request)
    }
}
