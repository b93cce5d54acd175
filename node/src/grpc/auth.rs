//! The operator credential: `authorization: Bearer <token>` on intake and
//! enrolment calls.

use std::sync::Arc;

use tonic::{Request, Status, service::Interceptor};

/// Checks the operator token.
#[derive(Clone)]
pub struct OperatorAuth {
    /// The expected token.
    token: Arc<str>,
}

impl std::fmt::Debug for OperatorAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OperatorAuth(..)")
    }
}

impl OperatorAuth {
    /// Accepts `token`.
    pub fn new(token: &str) -> OperatorAuth {
        OperatorAuth {
            token: Arc::from(token),
        }
    }
}

/// Compares without revealing where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Interceptor for OperatorAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(value) = request.metadata().get("authorization") else {
            return Err(Status::unauthenticated(
                "authorization: operator token required (\"authorization: Bearer <token>\")",
            ));
        };
        let given = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !same(given.as_bytes(), self.token.as_bytes()) {
            return Err(Status::unauthenticated(
                "authorization: wrong operator token",
            ));
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_bearer_token_passes() {
        let mut auth = OperatorAuth::new("s3cret-token");
        assert_eq!(
            auth.call(Request::new(())).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        let mut req = Request::new(());
        req.metadata_mut()
            .insert("authorization", "Bearer wrong".parse().expect("ascii"));
        assert!(
            auth.call(req)
                .unwrap_err()
                .message()
                .contains("wrong operator token")
        );
        let mut req = Request::new(());
        req.metadata_mut().insert(
            "authorization",
            "Bearer s3cret-token".parse().expect("ascii"),
        );
        assert!(auth.call(req).is_ok());
    }
}
