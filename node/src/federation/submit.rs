//! Federation.Submit at the parent: verify a child's summary and every
//! descendant it counts (the aggregator's checks), apply the revision rules,
//! store it durably with the receipt, and only then answer.

use std::{collections::HashMap, sync::Arc};

use tallytree_aggregator::{
    Admission, Candidate, ChildEntry, Defect, EnrolmentView, SummarySource, SummaryView,
    summary::check_not_future, verify_opened,
};
use tallytree_proto::{Digest, Month, RegionCode, pb, statement};
use tracing::{info, warn};

use super::revisions::{Accepted, Stripe, Stripes, Verdict};
use crate::{
    context::{NodeContext, TrustChange},
    store::{
        Batch, Cf, Store, StoreError,
        layout::{self, SummaryRow},
    },
    tls::peer::{Peer, PeerError, check_child},
};

/// Why a submission is refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A field is missing or malformed.
    #[error("{0}")]
    Invalid(String),
    /// A statement does not verify or does not add up.
    #[error(transparent)]
    Defect(#[from] Defect),
    /// The submitter is not a direct child.
    #[error("summary {region}: not a direct child of this node ({node})")]
    NotChild {
        /// The submitter.
        region: RegionCode,
        /// This node.
        node: RegionCode,
    },
    /// A revision at or below one already accepted, with another digest.
    #[error(
        "summary {region} {period}: revision {revision} with digest {digest} conflicts with accepted revision {held} ({held_digest}); both kept as equivocation evidence"
    )]
    Equivocation {
        /// Child.
        region: RegionCode,
        /// Month.
        period: Month,
        /// Revision submitted.
        revision: u64,
        /// Its digest (short).
        digest: String,
        /// Revision held.
        held: u64,
        /// Its digest (short).
        held_digest: String,
    },
    /// A revision below the latest accepted, never held here.
    #[error(
        "summary {region} {period}: revision {revision} is superseded by revision {latest}, accepted already; nothing stored"
    )]
    Superseded {
        /// Child.
        region: RegionCode,
        /// Month.
        period: Month,
        /// Revision submitted.
        revision: u64,
        /// The latest revision accepted.
        latest: u64,
    },
    /// The TLS peer may not speak for the summary's region.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Child summaries from the store (verified when stored) or from the request.
struct Source<'a> {
    /// The parent's store.
    store: &'a dyn Store,
    /// Descendants sent with the submission, by digest.
    included: HashMap<Digest, &'a pb::Envelope>,
}

impl<'a> SummarySource<'a> for Source<'a> {
    fn find(&self, child: &ChildEntry, period: Month) -> Option<Candidate<'a>> {
        if let Ok(Some(row)) = layout::summary_at(self.store, child.region, period, child.revision)
            && let (Ok(view), Ok(digest)) = (row.view(), row.digest())
        {
            return Some(Candidate::Trusted(Box::new(view), digest));
        }
        self.included
            .get(&child.digest)
            .map(|env| Candidate::Unverified(env))
    }
}

/// Federation.Submit at the parent: children's summaries verified, stored
/// durably and receipted.
#[derive(Debug)]
pub struct Submissions {
    /// The node's shared context.
    ctx: Arc<NodeContext>,
    /// Serialises the revision rules of one child and month.
    stripes: Stripes,
}

impl Submissions {
    /// Submissions to the node of `ctx`.
    pub fn new(ctx: Arc<NodeContext>) -> Submissions {
        Submissions {
            ctx,
            stripes: Stripes::new(),
        }
    }

    /// This node's key successions, handed to a child with its receipt.
    /// Blocking.
    pub fn successions(&self) -> Result<Vec<pb::Envelope>, StoreError> {
        super::succession::successions(self.ctx.ledger.store())
    }

    /// Handles one submission from `peer`; returns the signed receipt.
    /// Blocking.
    pub fn submit(
        &self,
        req: &pb::SubmitRequest,
        peer: &Peer,
    ) -> Result<pb::Envelope, SubmitError> {
        let ctx = &self.ctx;
        let env = req
            .summary
            .as_ref()
            .ok_or_else(|| SubmitError::Invalid("summary: required".into()))?;
        // Who is on the wire first: only the enrolled child itself may make
        // this node verify anything. The region is the summary's claim; its
        // signature is checked below against the same enrolment.
        let claimed = statement::peek_unverified::<pb::Summary>(env)
            .ok()
            .and_then(|s| RegionCode::parse(&s.region).ok());
        if let Some(region) = claimed {
            check_child(&ctx.trust(), peer, region, ctx.clock.now_ms())?;
        } else if *peer == Peer::Anonymous {
            return Err(PeerError::NoCertificate.into());
        }
        if !req.enrolments.is_empty() || !req.revocations.is_empty() {
            self.admit_statements(&req.enrolments, &req.revocations)?;
        }
        // Lock order: stripe, then ledger, then trust, innermost; the trust
        // guard is never held while waiting for another lock (see
        // `NodeContext::trust`).
        let (view, digest) = ctx.trust().open_summary(env)?;
        if !view.region.is_direct_child_of(ctx.identity.region) {
            return Err(SubmitError::NotChild {
                region: view.region,
                node: ctx.identity.region,
            });
        }
        check_not_future(view.region, view.period, ctx.clock.month()).map_err(Defect::from)?;
        // A duplicate or a stale revision is answered before its
        // descendants are verified.
        if let Some(receipt) = self.apply_rules(
            &mut self.stripes.lock(view.region, view.period),
            &view,
            digest,
            env,
        )? {
            return Ok(receipt);
        }

        // The descendants are verified without the stripe: stored rows never
        // change, so only the revision rules and the write need it, and
        // other submissions of the child's stripe do not wait for the
        // verification.
        let store = ctx.ledger.store();
        let source = Source {
            store,
            included: req
                .descendants
                .iter()
                .map(|e| (Digest::of(&e.payload), e))
                .collect(),
        };
        let verified = {
            let trust = ctx.trust();
            verify_opened(&trust, &source, view, digest)?
        };
        let view = &verified.view;

        let mut stripe = self.stripes.lock(view.region, view.period);
        // Again under the stripe: another submission of this child and month
        // may have been stored meanwhile.
        if let Some(receipt) = self.apply_rules(&mut stripe, view, digest, env)? {
            return Ok(receipt);
        }
        let now = ctx.clock.now_ms();
        let mut batch = Batch::default();
        for (d, _, denv) in &verified.descendants {
            batch.put(
                Cf::Summaries,
                layout::summary_key(d.region, d.period, d.revision),
                layout::summary_row_bytes(denv, now),
            );
        }
        batch.put(
            Cf::Summaries,
            layout::summary_key(view.region, view.period, view.revision),
            layout::summary_row_bytes(env, now),
        );
        batch.put(Cf::Dirty, layout::month_key(view.period), Vec::new());
        {
            // Shared: submissions write concurrently and share syncs; the
            // signer's derive-and-clear of a month is exclusive.
            let _writer = ctx.ledger.shared();
            ctx.ledger.write_changes(batch)?;
        }
        crate::faults::kill_point("submit-after-sync");
        stripe.stored(
            view.region,
            view.period,
            Accepted {
                revision: view.revision,
                digest,
                received_at_ms: now,
            },
        );
        drop(stripe);
        // Durable now: only from here on may a receipt exist.
        let receipt = ctx.issue_receipt(view, digest, now);
        crate::faults::kill_point("submit-after-receipt");
        info!(child = %view.region, period = %view.period, revision = view.revision, descendants = verified.descendants.len(), digest = %digest.short(), "accepted summary");
        Ok(receipt)
    }

    /// Acts on the revision rules' verdict: `Some(receipt)` for a revision
    /// held with the same digest, `None` for a new one; an equivocation is
    /// stored as evidence (both summaries) and refused; a superseded
    /// revision is refused.
    fn apply_rules(
        &self,
        stripe: &mut Stripe,
        view: &SummaryView,
        digest: Digest,
        env: &pb::Envelope,
    ) -> Result<Option<pb::Envelope>, SubmitError> {
        match stripe.judge(self.ctx.ledger.store(), view, digest)? {
            Verdict::New => Ok(None),
            Verdict::Duplicate { received_at_ms } => {
                Ok(Some(self.ctx.issue_receipt(view, digest, received_at_ms)))
            }
            Verdict::Equivocation { held } => Err(self.equivocation(view, digest, env, &held)?),
            Verdict::Superseded { latest } => Err(SubmitError::Superseded {
                region: view.region,
                period: view.period,
                revision: view.revision,
                latest,
            }),
        }
    }

    /// Keeps both conflicting summaries as evidence; returns the refusal.
    fn equivocation(
        &self,
        view: &SummaryView,
        digest: Digest,
        env: &pb::Envelope,
        held: &SummaryRow,
    ) -> Result<SubmitError, StoreError> {
        let held_view = held.view()?;
        let held_digest = held.digest()?;
        let mut batch = Batch::default();
        batch.put(
            Cf::Evidence,
            layout::evidence_key(view.region, view.period, &digest),
            layout::envelope_bytes(env),
        );
        batch.put(
            Cf::Evidence,
            layout::evidence_key(view.region, view.period, &held_digest),
            layout::envelope_bytes(held.envelope()?),
        );
        self.ctx.ledger.store().write(batch)?;
        warn!(child = %view.region, period = %view.period, revision = view.revision, held = held_view.revision, "equivocation refused");
        Ok(SubmitError::Equivocation {
            region: view.region,
            period: view.period,
            revision: view.revision,
            digest: digest.short(),
            held: held_view.revision,
            held_digest: held_digest.short(),
        })
    }

    /// Admits the enrolments and revocations sent from the subtree: all of
    /// them verified, stored durably, and only then trusted; one that does
    /// not verify refuses the submission and admits none.
    fn admit_statements(
        &self,
        enrolments: &[pb::Envelope],
        revocations: &[pb::Envelope],
    ) -> Result<(), SubmitError> {
        self.ctx.admit(|trust| {
            let admission: Admission = trust.check_all(enrolments, revocations)?;
            let mut batch = Batch::default();
            // Checked in dependency order; stored as received.
            let checked: HashMap<Digest, &EnrolmentView> =
                admission.enrolments.iter().map(|v| (v.digest, v)).collect();
            for env in enrolments {
                if let Some(view) = checked.get(&Digest::of(&env.payload)) {
                    batch.put(
                        Cf::Enrolments,
                        layout::enrolment_key(view.region, view.serial),
                        layout::envelope_bytes(env),
                    );
                }
            }
            // Checked in the order received.
            for (view, env) in admission.revocations.iter().zip(revocations) {
                batch.put(
                    Cf::Revocations,
                    layout::revocation_key(view.region, &view.key),
                    layout::envelope_bytes(env),
                );
            }
            Ok(TrustChange {
                admission,
                own_keys: Vec::new(),
                batch,
            })
        })
    }
}
