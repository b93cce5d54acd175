//! Overload and abuse: what one node serves at once, and how often one
//! party may write.
//!
//! - [`CallLimitLayer`]: a limit on the calls in progress at the node as a
//!   whole, and a tighter one on submissions from children (each may carry
//!   a subtree of summaries of many megabytes, all of it read before the
//!   handler runs). A call beyond a limit is shed at once with
//!   RESOURCE_EXHAUSTED, before its message is read: memory stays bounded by
//!   the limits times the message sizes, and a caller backs off and retries.
//! - [`RateLimiter`]: token buckets per party (a child by its certificate,
//!   an operator by its credential) for Submit and intake, so one busy or
//!   faulty party cannot crowd out the others.
//!
//! The per-connection limits, timeouts and HTTP/2 limits are the server's
//! own settings (see [`crate::server`] and [`crate::config::LimitsConfig`]).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Instant,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{
    Status,
    codegen::{BoxFuture, Service, http},
};
use tower::Layer;

use crate::error::{ErrorCode, ServiceError};

/// The path prefix of calls from children.
const FEDERATION: &str = "/tallytree.v1.Federation/";

/// Sheds calls beyond the node's limits.
#[derive(Clone, Debug)]
pub struct CallLimitLayer {
    all: Arc<Semaphore>,
    submissions: Arc<Semaphore>,
    limits: (usize, usize),
}

impl CallLimitLayer {
    /// At most `all` calls in progress, of which at most `submissions`
    /// Federation calls.
    pub fn new(all: usize, submissions: usize) -> CallLimitLayer {
        let (all, submissions) = (all.max(1), submissions.max(1));
        CallLimitLayer {
            all: Arc::new(Semaphore::new(all)),
            submissions: Arc::new(Semaphore::new(submissions)),
            limits: (all, submissions),
        }
    }
}

impl<S> Layer<S> for CallLimitLayer {
    type Service = CallLimit<S>;

    fn layer(&self, inner: S) -> CallLimit<S> {
        CallLimit {
            inner,
            limits: self.clone(),
        }
    }
}

/// The service of [`CallLimitLayer`].
#[derive(Clone, Debug)]
pub struct CallLimit<S> {
    inner: S,
    limits: CallLimitLayer,
}

impl CallLimit<()> {
    /// The permits a call needs, or the status it is shed with.
    fn admit(
        limits: &CallLimitLayer,
        path: &str,
    ) -> Result<(OwnedSemaphorePermit, Option<OwnedSemaphorePermit>), Status> {
        let all = limits.all.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "node busy: {} calls in progress (limits.max_concurrent_calls); retry with backoff",
                limits.limits.0
            ))
        })?;
        let submission = if path.starts_with(FEDERATION) {
            Some(limits.submissions.clone().try_acquire_owned().map_err(|_| {
                Status::resource_exhausted(format!(
                    "node busy: {} submissions being verified (limits.max_concurrent_submissions); retry with backoff",
                    limits.limits.1
                ))
            })?)
        } else {
            None
        };
        Ok((all, submission))
    }
}

impl<S, B, R> Service<http::Request<B>> for CallLimit<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match CallLimit::admit(&self.limits, request.uri().path()) {
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
            Ok(permits) => {
                let future = self.inner.call(request);
                Box::pin(async move {
                    let response = future.await;
                    drop(permits);
                    response
                })
            }
        }
    }
}

/// A party over its rate.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error(
    "rate limit: {party} makes more than {rate} {what} calls a second (burst {burst}); retry with backoff"
)]
pub struct Throttled {
    /// Who.
    pub party: String,
    /// Which calls.
    pub what: &'static str,
    /// The sustained rate allowed.
    pub rate: u32,
    /// The burst allowed.
    pub burst: u32,
}

impl ServiceError for Throttled {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::ResourceExhausted
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets per party: `rate` calls a second sustained, `burst` at
/// once. At most `max_parties` buckets are kept; beyond that, full ones
/// (parties idle long enough to have refilled) are forgotten first.
#[derive(Debug)]
pub struct RateLimiter {
    what: &'static str,
    rate: u32,
    burst: u32,
    max_parties: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter of `what` calls (for messages).
    pub fn new(what: &'static str, rate: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            what,
            rate: rate.max(1),
            burst: burst.max(1),
            max_parties: 10_000,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one call's token for `party` at `now`.
    pub fn check(&self, party: &str, now: Instant) -> Result<(), Throttled> {
        let (rate, burst) = (f64::from(self.rate), f64::from(self.burst));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= self.max_parties && !buckets.contains_key(party) {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
            if buckets.len() >= self.max_parties {
                // Every known party is busy: refuse newcomers rather than grow.
                return Err(self.throttled(party));
            }
        }
        let bucket = buckets.entry(party.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * rate;
        bucket.tokens = (bucket.tokens + refill).min(burst);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return Err(self.throttled(party));
        }
        bucket.tokens -= 1.0;
        Ok(())
    }

    fn throttled(&self, party: &str) -> Throttled {
        Throttled {
            party: party.to_owned(),
            what: self.what,
            rate: self.rate,
            burst: self.burst,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_party_gets_its_burst_then_its_rate_and_others_are_unaffected() {
        let limiter = RateLimiter::new("Submit", 10, 5);
        let t0 = Instant::now();
        for _ in 0..5 {
            limiter.check("A", t0).expect("within the burst");
        }
        let err = limiter.check("A", t0).expect_err("over the burst");
        assert!(
            err.to_string()
                .contains("A makes more than 10 Submit calls"),
            "{err}"
        );
        limiter
            .check("B", t0)
            .expect("another party has its own bucket");
        // 100 ms refill one token at 10 a second.
        let t1 = t0 + Duration::from_millis(100);
        limiter.check("A", t1).expect("refilled");
        assert!(limiter.check("A", t1).is_err());
    }

    #[test]
    fn the_number_of_parties_kept_is_bounded() {
        let mut limiter = RateLimiter::new("intake", 1, 1);
        limiter.max_parties = 3;
        let t0 = Instant::now();
        for p in ["a", "b", "c"] {
            limiter.check(p, t0).expect("first call");
        }
        // All three are empty: a fourth party is refused, not remembered.
        assert!(limiter.check("d", t0).is_err());
        // Once they have refilled they are forgotten and room is made.
        let later = t0 + Duration::from_secs(5);
        limiter.check("d", later).expect("room made");
        assert!(limiter.buckets.lock().expect("lock").len() <= 3);
    }

    #[tokio::test]
    async fn calls_beyond_the_limits_are_shed_with_resource_exhausted() {
        let layer = CallLimitLayer::new(2, 1);
        let held = CallLimit::admit(&layer, "/tallytree.v1.Federation/Submit").expect("first");
        let shed = CallLimit::admit(&layer, "/tallytree.v1.Federation/Submit").expect_err("second");
        assert_eq!(shed.code(), tonic::Code::ResourceExhausted);
        assert!(
            shed.message().contains("max_concurrent_submissions"),
            "{shed:?}"
        );
        let other = CallLimit::admit(&layer, "/tallytree.v1.Query/Tally").expect("a query");
        let shed = CallLimit::admit(&layer, "/tallytree.v1.Query/Tally").expect_err("third");
        assert!(shed.message().contains("max_concurrent_calls"), "{shed:?}");
        drop((held, other));
        let _again = CallLimit::admit(&layer, "/tallytree.v1.Query/Tally").expect("released");
    }
}
