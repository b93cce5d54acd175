//! The recursive check of a summary with every descendant summary it counts
//! ([`verify_tree`]), as a parent runs it on every submission. The
//! child-reference and completeness rules are [`crate::rollup`]'s, shared
//! with the auditor and the inclusion proof.

use tallytree_proto::{Digest, Month, pb};

use crate::{
    defect::{Absence, Defect},
    rollup::{ChildRefs, Found, check_completeness},
    summary::{ChildEntry, SummaryView},
    trust::Trust,
};

/// Where the child summaries a summary references come from.
pub trait SummarySource<'s> {
    /// The summary `child` references for `period`: already verified (held
    /// by a node that checked it when storing it) or to be verified.
    fn find(&self, child: &ChildEntry, period: Month) -> Option<Candidate<'s>>;
}

/// A child summary found for a reference.
#[derive(Debug, Clone)]
pub enum Candidate<'s> {
    /// Checked before; its decoded view and digest.
    Trusted(Box<SummaryView>, Digest),
    /// To be verified now (borrowed from the source: a parent verifies the
    /// envelopes of the request in place).
    Unverified(&'s pb::Envelope),
}

/// A summary verified with every descendant it counts.
#[derive(Debug, Clone)]
pub struct Verified<'s> {
    /// The summary.
    pub view: SummaryView,
    /// Its digest.
    pub digest: Digest,
    /// The descendant summaries verified on the way (not the trusted ones),
    /// with their envelopes, so the caller can store them.
    pub descendants: Vec<(SummaryView, Digest, &'s pb::Envelope)>,
}

/// Verifies `env` and, recursively, every child summary it references:
/// signatures and enrolments, content, same period, digests and revisions
/// as referenced, `total == local + sum of child totals`, and
/// `children_expected` equal to the children enrolled when it was issued.
pub fn verify_tree<'s>(
    trust: &Trust,
    source: &dyn SummarySource<'s>,
    env: &pb::Envelope,
) -> Result<Verified<'s>, Defect> {
    let (view, digest) = trust.open_summary(env)?;
    verify_opened(trust, source, view, digest)
}

/// [`verify_tree`] for a summary already opened with
/// [`Trust::open_summary`] (its signature is not checked twice). The
/// child-reference, total and completeness rules are [`crate::rollup`]'s.
pub fn verify_opened<'s>(
    trust: &Trust,
    source: &dyn SummarySource<'s>,
    view: SummaryView,
    digest: Digest,
) -> Result<Verified<'s>, Defect> {
    let mut descendants = Vec::new();
    let mut refs = ChildRefs::new(&view);
    for child in &view.children {
        let found = match source.find(child, view.period) {
            None => Err(Absence::NotProvided),
            Some(Candidate::Trusted(v, d)) => Ok(Found::of(&v, d)),
            Some(Candidate::Unverified(child_env)) => {
                let verified = verify_tree(trust, source, child_env)?;
                let found = Found::of(&verified.view, verified.digest);
                descendants.extend(verified.descendants);
                descendants.push((verified.view, verified.digest, child_env));
                Ok(found)
            }
        };
        refs.child(child, found)?;
    }
    refs.check_total()?;
    check_completeness(trust, &view)?;
    Ok(Verified {
        view,
        digest,
        descendants,
    })
}
