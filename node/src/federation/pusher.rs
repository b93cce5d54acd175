//! The pusher: sends each revision waiting in the outbox to the parent with
//! the descendant summaries and enrolments the parent does not hold yet,
//! checks the parent's signed receipt, and stores it. Calls go through a
//! tower timeout; failed rounds back off exponentially with jitter. The
//! outbox keeps only the latest revision of a month, so superseded revisions
//! still waiting are never sent.

use std::{sync::Arc, time::Duration};

use tallytree_aggregator::SummaryView;
use tallytree_proto::{
    Digest, Month, PublicKey,
    pb::{self, federation_client::FederationClient},
    statement,
};
use tower::{
    Service, ServiceBuilder, ServiceExt,
    retry::backoff::{Backoff, ExponentialBackoffMaker, MakeBackoff},
    util::rng::HasherRng,
};
use tracing::{debug, info, warn};

use crate::{
    config::ParentConfig,
    context::NodeContext,
    store::{
        Batch, Cf, StoreError,
        layout::{self, meta},
    },
    tls::{
        client::{ParentTls, parent_endpoint},
        material::TlsKey,
    },
};

/// A request ready to send, with what it forwards for the first time.
struct Prepared {
    month: Month,
    revision: u64,
    digest: Digest,
    request: pb::SubmitRequest,
    forwarded: Vec<Digest>,
}

/// Pushes this node's revisions to its parent.
#[derive(Debug, Clone)]
pub struct Pusher {
    /// The node's shared context.
    ctx: Arc<NodeContext>,
    /// Parent address, timeout and backoff.
    config: ParentConfig,
    /// Push without TLS (the node is configured plaintext, on loopback).
    plaintext: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Pusher {
    /// A pusher for `ctx` with `config`, over TLS unless `plaintext`.
    pub fn new(ctx: Arc<NodeContext>, config: ParentConfig, plaintext: bool) -> Pusher {
        Pusher {
            ctx,
            config,
            plaintext,
        }
    }

    /// What this node holds to reach its parent over TLS: `None` while no
    /// enrolment is installed, or when pushing plaintext. Blocking.
    fn parent_tls(ctx: &NodeContext, plaintext: bool) -> Result<Option<ParentTls>, BoxError> {
        if plaintext {
            return Ok(None);
        }
        let Some(parent) = ctx.identity.region.parent() else {
            return Ok(None);
        };
        let store = ctx.ledger.store();
        let (Some(ca), Some(cert)) = (
            store.get(Cf::Meta, meta::PARENT_CA)?,
            store.get(Cf::Meta, meta::CLIENT_CERT)?,
        ) else {
            return Ok(None);
        };
        let Some(key_file) = ctx.identity.tls_key_file() else {
            return Err("no TLS key file: cannot push over TLS".into());
        };
        let key = TlsKey::load(key_file)?;
        Ok(Some(ParentTls {
            parent,
            ca_pem: String::from_utf8(ca)?,
            cert_pem: String::from_utf8(cert)?,
            key_pem: key.private_pem(),
        }))
    }

    /// Runs until `shutdown` resolves. Without a parent address it only waits.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let Some(address) = self.config.address.clone() else {
            shutdown.await;
            return;
        };
        let timeout = Duration::from_millis(self.config.timeout_ms);
        if let Err(e) = parent_endpoint(&address, None, timeout) {
            warn!(%address, error = %e, "parent.address is not a valid URL; not pushing");
            shutdown.await;
            return;
        }
        let maker = ExponentialBackoffMaker::new(
            Duration::from_millis(self.config.backoff_min_ms),
            Duration::from_millis(self.config.backoff_max_ms),
            0.5,
            HasherRng::default(),
        );
        let Ok(mut maker) = maker else {
            warn!(
                "parent backoff settings invalid (backoff_min_ms must be <= backoff_max_ms); not pushing"
            );
            shutdown.await;
            return;
        };
        let mut backoff = maker.make_backoff();
        // The link is built again when what the node holds for it changes
        // (an enrolment installed, a key rotated).
        let mut link: Option<(Option<ParentTls>, _)> = None;
        loop {
            let (ctx, plaintext) = (self.ctx.clone(), self.plaintext);
            let wanted = tokio::task::spawn_blocking(move || Pusher::parent_tls(&ctx, plaintext))
                .await
                .map_err(|e| -> BoxError { e.to_string().into() })
                .and_then(|r| r);
            let outcome = match wanted {
                Err(e) => Err(e),
                Ok(wanted) => {
                    if link.as_ref().is_none_or(|(held, _)| *held != wanted) {
                        link = match parent_endpoint(&address, wanted.as_ref(), timeout) {
                            Ok(endpoint) => {
                                Some((wanted, submitter(endpoint.connect_lazy(), timeout)))
                            }
                            // Unusable certificates: tried again after a
                            // backoff (a new enrolment may be installed).
                            Err(e) => {
                                warn!(%address, error = %e, "cannot set up TLS to the parent");
                                None
                            }
                        };
                    }
                    match link.as_mut() {
                        Some((_, submit)) => self.round(submit).await,
                        None => Err("no usable TLS link to the parent".into()),
                    }
                }
            };
            match outcome {
                Ok(true) => {
                    backoff = maker.make_backoff();
                    continue;
                }
                Ok(false) => {
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = self.ctx.pusher_woken() => {}
                        _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                    }
                }
                Err(e) => {
                    warn!(parent = %address, error = %e, "push failed; backing off");
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = backoff.next_backoff() => {}
                    }
                }
            }
        }
    }

    /// Pushes everything in the outbox once, one entry at a time (each
    /// request built just before it is sent, so nothing acknowledged by the
    /// previous one is sent again). Ok(false) when there was nothing to push
    /// or no enrolment is installed yet.
    async fn round<S>(&self, submit: &mut S) -> Result<bool, BoxError>
    where
        S: Service<pb::SubmitRequest, Response = pb::SubmitResponse, Error = BoxError>,
    {
        let ctx = self.ctx.clone();
        let (parent_key, outbox) = tokio::task::spawn_blocking(move || -> Result<_, StoreError> {
            Ok((ctx.parent_key()?, layout::outbox(ctx.ledger.store())?))
        })
        .await??;
        let Some(parent_key) = parent_key else {
            return Ok(false);
        };
        if outbox.is_empty() {
            return Ok(false);
        }
        // One refused month must not hold back the others: try every entry,
        // then report the first failure (the caller backs off and retries).
        let mut first_error: Option<BoxError> = None;
        for (month, revision) in outbox {
            let ctx = self.ctx.clone();
            let prepared =
                tokio::task::spawn_blocking(move || prepare(&ctx, month, revision)).await??;
            let Some(p) = prepared else { continue };
            let response = match submit.ready().await?.call(p.request.clone()).await {
                Ok(r) => r,
                Err(e) => {
                    warn!(period = %month, revision, error = %e, "parent did not accept the summary");
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let receipt = response
                .receipt
                .ok_or("parent answered without a receipt")?;
            let successions = response.successions;
            let ctx = self.ctx.clone();
            tokio::task::spawn_blocking(move || {
                record_receipt(&ctx, &parent_key, p, receipt, &successions)
            })
            .await??;
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(true)
    }
}

/// Federation.Submit on `channel`, each call bounded by `timeout`.
fn submitter(
    channel: tonic::transport::Channel,
    timeout: Duration,
) -> impl Service<pb::SubmitRequest, Response = pb::SubmitResponse, Error = BoxError, Future: Send> + Send
{
    let client = FederationClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(256 << 20);
    ServiceBuilder::new()
        .timeout(timeout)
        .service_fn(move |req: pb::SubmitRequest| {
            let mut client = client.clone();
            async move { client.submit(req).await.map(|r| r.into_inner()) }
        })
}

/// Builds the request for one outbox entry. Blocking.
fn prepare(ctx: &NodeContext, month: Month, revision: u64) -> Result<Option<Prepared>, StoreError> {
    let store = ctx.ledger.store();
    let Some(row) = layout::summary_at(store, ctx.identity.region, month, revision)? else {
        return Ok(None);
    };
    let digest = row.digest()?;
    let forwarded = |d: &Digest| store.get(Cf::Forwarded, d.as_ref()).map(|v| v.is_some());
    let mut descendants = Vec::new();
    let mut new = Vec::new();
    let mut stack: Vec<SummaryView> = vec![row.view()?];
    while let Some(view) = stack.pop() {
        for child in &view.children {
            if forwarded(&child.digest)? {
                continue;
            }
            let Some(child_row) = layout::summary_at(store, child.region, month, child.revision)?
            else {
                continue;
            };
            descendants.push(child_row.envelope()?.clone());
            new.push(child.digest);
            stack.push(child_row.view()?);
        }
    }
    let mut enrolments = Vec::new();
    for env in layout::envelopes(store, Cf::Enrolments, b"")? {
        let d = Digest::of(&env.payload);
        if !forwarded(&d)? {
            new.push(d);
            enrolments.push(env);
        }
    }
    let mut revocations = Vec::new();
    for env in layout::envelopes(store, Cf::Revocations, b"")? {
        let d = Digest::of(&env.payload);
        if !forwarded(&d)? {
            new.push(d);
            revocations.push(env);
        }
    }
    Ok(Some(Prepared {
        month,
        revision,
        digest,
        request: pb::SubmitRequest {
            summary: Some(row.envelope()?.clone()),
            descendants,
            enrolments,
            revocations,
        },
        forwarded: new,
    }))
}

/// Checks the parent's receipt and stores it; marks what was forwarded and
/// clears the outbox entry unless a newer revision replaced it. A receipt
/// signed by a key other than the parent key held is accepted when the
/// parent's key successions lead there from it; that key is then held.
/// Blocking.
fn record_receipt(
    ctx: &NodeContext,
    parent_key: &PublicKey,
    p: Prepared,
    receipt_env: pb::Envelope,
    successions: &[pb::Envelope],
) -> Result<(), BoxError> {
    let signed_by = receipt_env
        .signatures
        .first()
        .map(|s| s.keyid.clone())
        .unwrap_or_default();
    let parent = ctx
        .identity
        .region
        .parent()
        .map(|r| r.to_string())
        .unwrap_or_default();
    let key = if signed_by == parent_key.key_id() {
        *parent_key
    } else {
        super::succession::follow(*parent_key, &signed_by, &parent, successions)
            .map_err(|e| format!("receipt from parent signed by an unknown key: {e}"))?
    };
    let receipt: pb::Receipt = statement::open(&receipt_env, &key)
        .map_err(|e| format!("receipt from parent does not verify: {e}"))?;
    let matches = receipt.region == ctx.identity.region.to_string()
        && receipt.period == p.month.to_string()
        && receipt.revision == p.revision
        && receipt.digest == p.digest.0;
    if !matches {
        return Err(format!(
            "receipt from parent is for {} {} revision {}, not for the summary sent",
            receipt.region, receipt.period, receipt.revision
        )
        .into());
    }
    crate::faults::kill_point("push-before-receipt-stored");
    let _writer = ctx.ledger.lock();
    let store = ctx.ledger.store();
    let mut batch = Batch::default();
    if key != *parent_key {
        batch.put(Cf::Meta, meta::PARENT_KEY, key.0.to_vec());
        info!(parent = %parent, key = %&key.key_id()[..16], "parent's new key followed from its key successions");
    }
    batch.put(
        Cf::Receipts,
        layout::receipt_key(p.month, p.revision),
        layout::envelope_bytes(&receipt_env),
    );
    for d in &p.forwarded {
        batch.put(Cf::Forwarded, d.as_ref().to_vec(), Vec::new());
    }
    let still = layout::outbox(store)?
        .into_iter()
        .any(|(m, r)| m == p.month && r == p.revision);
    if still {
        batch.delete(Cf::Outbox, layout::month_key(p.month));
    }
    store.write(batch)?;
    debug!(period = %p.month, revision = p.revision, "receipt stored");
    info!(period = %p.month, revision = p.revision, digest = %p.digest.short(), "pushed to parent");
    Ok(())
}

#[cfg(test)]
mod tests {
    use tallytree_proto::{RegionCode, SigningKey};

    use super::*;
    use crate::{
        clock::Clock,
        config::{IntakeConfig, SignerConfig},
        identity::Identity,
        intake::{Intake, Submission},
        ledger::Ledger,
        signer::Signer,
        store::MemStore,
    };

    /// A village with a signed revision waiting for each of two months, and
    /// its parent's key installed.
    fn village_with_two_months(parent: &SigningKey) -> Arc<NodeContext> {
        let ledger = Arc::new(Ledger::new(Arc::new(MemStore::new())));
        let identity = Arc::new(Identity::new(
            RegionCode::parse("210214001001").expect("code"),
            "玉皇庙社区".into(),
            SigningKey::generate().expect("key").0,
            None,
        ));
        let clock = Clock::new(8);
        let ctx = Arc::new(
            NodeContext::open(ledger.clone(), identity, clock, Default::default()).expect("open"),
        );
        let intake = Intake::new(ledger.clone(), clock, IntakeConfig::default());
        let cases = ["2025-01-05", "2025-02-05"]
            .iter()
            .enumerate()
            .map(|(i, day)| {
                let case = pb::Case {
                    id: format!("C-{i}"),
                    category: pb::Category::Land as i32,
                    registered_on: (*day).into(),
                    state: pb::CaseState::InProgress as i32,
                    closed_on: String::new(),
                    deadline: String::new(),
                };
                (i as u64, case)
            })
            .collect();
        intake
            .record(Submission {
                cases,
                ..Default::default()
            })
            .expect("record");
        let signed = Signer::new(ctx.clone(), SignerConfig::default())
            .sign_dirty()
            .expect("sign");
        assert_eq!(signed.len(), 2);
        let mut batch = Batch::default();
        batch.put(Cf::Meta, meta::PARENT_KEY, parent.public_key().0.to_vec());
        ledger.store().write(batch).expect("parent key");
        ctx
    }

    /// A parent that refuses `refused` and receipts every other month.
    fn parent(
        key: Arc<SigningKey>,
        refused: Month,
    ) -> impl Service<pb::SubmitRequest, Response = pb::SubmitResponse, Error = BoxError> {
        tower::service_fn(move |req: pb::SubmitRequest| {
            let key = key.clone();
            async move {
                let env = req.summary.ok_or("summary: required")?;
                let s: pb::Summary = statement::peek_unverified(&env)?;
                if s.period == refused.to_string() {
                    return Err(format!("summary {} {}: refused", s.region, s.period).into());
                }
                let receipt = pb::Receipt {
                    parent: "210214001000".into(),
                    region: s.region,
                    period: s.period,
                    revision: s.revision,
                    digest: Digest::of(&env.payload).0.to_vec(),
                    received_at_ms: 1,
                };
                Ok(pb::SubmitResponse {
                    receipt: Some(statement::seal(&key, &receipt).envelope),
                    successions: Vec::new(),
                })
            }
        })
    }

    #[tokio::test]
    async fn a_refused_month_does_not_hold_back_the_others() {
        let parent_key = Arc::new(SigningKey::generate().expect("key").0);
        let ctx = village_with_two_months(&parent_key);
        let pusher = Pusher::new(ctx.clone(), ParentConfig::default(), true);
        let (january, february) = (
            Month::parse("2025-01").expect("month"),
            Month::parse("2025-02").expect("month"),
        );

        let mut refusing = parent(parent_key.clone(), january);
        let err = pusher
            .round(&mut refusing)
            .await
            .expect_err("the refusal is reported");
        assert!(err.to_string().contains("2025-01: refused"), "{err}");
        // February went through: its receipt is stored, its entry gone;
        // January waits for the next round.
        let store = ctx.ledger.store();
        assert_eq!(layout::outbox(store).expect("outbox"), vec![(january, 1)]);
        assert!(
            store
                .get(Cf::Receipts, &layout::receipt_key(february, 1))
                .expect("get")
                .is_some()
        );

        let mut accepting = parent(parent_key, Month::parse("2000-01").expect("month"));
        assert!(pusher.round(&mut accepting).await.expect("pushed"));
        assert!(layout::outbox(store).expect("outbox").is_empty());
        assert!(
            store
                .get(Cf::Receipts, &layout::receipt_key(january, 1))
                .expect("get")
                .is_some()
        );
    }
}
