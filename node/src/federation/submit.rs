//! Federation.Submit at the parent: verify a child's summary and every
//! descendant it counts (the aggregator's checks), apply the revision rules,
//! store it durably with the receipt, and only then answer.

use std::collections::HashMap;

use tallytree_aggregator::{
    Candidate, ChildEntry, Finding, SummarySource, SummaryView, summary::check_not_future,
    verify_opened,
};
use tallytree_proto::{Digest, Month, RegionCode, pb, statement};
use tracing::info;

use super::{Federation, revisions::Accepted};
use crate::store::{Batch, Cf, Store, StoreError, layout};

/// Why a submission is refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// A field is missing or malformed.
    #[error("{0}")]
    Invalid(String),
    /// A statement does not verify or does not add up.
    #[error(transparent)]
    Finding(#[from] Finding),
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

impl Federation {
    /// Handles one submission; returns the signed receipt. Blocking.
    pub fn submit(&self, req: &pb::SubmitRequest) -> Result<pb::Envelope, SubmitError> {
        let env = req
            .summary
            .as_ref()
            .ok_or_else(|| SubmitError::Invalid("summary: required".into()))?;
        if !req.enrolments.is_empty() || !req.revocations.is_empty() {
            self.admit_statements(&req.enrolments, &req.revocations)?;
        }
        // Lock order: stripe, then ledger, then trust, innermost; the trust
        // guard is never held while waiting for another lock (see
        // `Federation::trust`).
        let (view, digest) = self.trust().open_summary(env)?;
        if !view.region.is_direct_child_of(self.identity.region) {
            return Err(SubmitError::NotChild {
                region: view.region,
                node: self.identity.region,
            });
        }
        check_not_future(view.region, view.period, self.clock.month()).map_err(Finding::from)?;
        // A duplicate or a stale revision is answered before its
        // descendants are verified.
        if let Some(receipt) = self.check_revision(
            &mut self.stripe(view.region, view.period),
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
        let store = self.ledger.store();
        let source = Source {
            store,
            included: req
                .descendants
                .iter()
                .map(|e| (Digest::of(&e.payload), e))
                .collect(),
        };
        let verified = {
            let trust = self.trust();
            verify_opened(&trust, &source, view, digest)?
        };
        let view = &verified.view;

        let mut stripe = self.stripe(view.region, view.period);
        // Again under the stripe: another submission of this child and month
        // may have been stored meanwhile.
        if let Some(receipt) = self.check_revision(&mut stripe, view, digest, env)? {
            return Ok(receipt);
        }
        let now = self.clock.now_ms();
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
            let _writer = self.ledger.shared();
            self.ledger.write_changes(batch)?;
        }
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
        let receipt = self.issue_receipt(view, digest, now);
        info!(child = %view.region, period = %view.period, revision = view.revision, descendants = verified.descendants.len(), digest = %digest.short(), "accepted summary");
        Ok(receipt)
    }

    /// Signs the receipt of a stored summary. Ed25519 is deterministic, so
    /// the receipt is signed again byte for byte from the stored row when it
    /// is asked for again (a duplicate submission, an evidence export):
    /// nothing but the summary needs storing, and one sync serves both.
    pub(crate) fn issue_receipt(
        &self,
        view: &SummaryView,
        digest: Digest,
        received_at_ms: i64,
    ) -> pb::Envelope {
        let receipt = pb::Receipt {
            parent: self.identity.region.to_string(),
            region: view.region.to_string(),
            period: view.period.to_string(),
            revision: view.revision,
            digest: digest.0.to_vec(),
            received_at_ms,
        };
        statement::seal(&self.identity.key(), &receipt).envelope
    }

    /// Admits enrolments and revocations sent from the subtree, storing the
    /// ones that verify.
    fn admit_statements(
        &self,
        enrolments: &[pb::Envelope],
        revocations: &[pb::Envelope],
    ) -> Result<(), SubmitError> {
        let mut trust = self.trust_mut();
        let findings = trust.admit_all(enrolments, revocations);
        if let Some(f) = findings.into_iter().next() {
            return Err(f.into());
        }
        drop(trust);
        // Every statement verified by `admit_all` above: read for its key only.
        let mut batch = Batch::default();
        for env in enrolments {
            let e: pb::Enrolment =
                statement::peek_unverified(env).map_err(|e| SubmitError::Invalid(e.to_string()))?;
            let region =
                RegionCode::parse(&e.region).map_err(|e| SubmitError::Invalid(e.to_string()))?;
            batch.put(
                Cf::Enrolments,
                layout::enrolment_key(region, e.serial),
                layout::envelope_bytes(env),
            );
        }
        for env in revocations {
            let r: pb::Revocation =
                statement::peek_unverified(env).map_err(|e| SubmitError::Invalid(e.to_string()))?;
            let region =
                RegionCode::parse(&r.region).map_err(|e| SubmitError::Invalid(e.to_string()))?;
            let key = tallytree_proto::PublicKey::from_slice(&r.public_key)
                .map_err(|e| SubmitError::Invalid(e.to_string()))?;
            batch.put(
                Cf::Revocations,
                layout::revocation_key(region, &key),
                layout::envelope_bytes(env),
            );
        }
        self.ledger.store().write(batch)?;
        Ok(())
    }
}
