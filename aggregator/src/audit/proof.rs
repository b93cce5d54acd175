//! Inclusion proofs: a unit's signed summary and the chain of ancestor
//! summaries that count it, up to a trust anchor, verified offline with the
//! roll-up rules every parent and auditor applies ([`crate::rollup`]).

use tallytree_proto::{Month, RegionCode, pb};

use crate::{
    rollup::{Found, check_child, check_completeness},
    root::Pinned,
    summary::SummaryView,
};

/// A verified inclusion proof.
#[derive(Debug, Clone)]
pub struct ProofReport {
    /// The unit proven, its summary.
    pub unit: SummaryView,
    /// The chain from the unit's parent up to the top.
    pub chain: Vec<SummaryView>,
}

/// Verifies an inclusion proof: each summary signed by its enrolled key
/// (chained to the anchors), each one counted by the next as referenced
/// (digest, revision, month) and complete (children expected as enrolled),
/// the last signed by an anchor's region, and the unit and month the
/// proof's header claims the ones proven.
pub fn verify_proof(
    items: impl IntoIterator<Item = pb::EvidenceItem>,
    pinned: &Pinned,
    now_ms: i64,
) -> Result<ProofReport, String> {
    use pb::evidence_item::Item;
    let mut roots = Vec::new();
    let mut header = None;
    let mut enrolments = Vec::new();
    let mut revocations = Vec::new();
    let mut summaries = Vec::new();
    for item in items {
        match item.item {
            Some(Item::Header(h)) => header = Some(h),
            Some(Item::Enrolment(e)) => enrolments.push(e),
            Some(Item::Revocation(r)) => revocations.push(r),
            Some(Item::Summary(s)) => summaries.push(s),
            Some(Item::Root(r)) => roots.push(r),
            _ => {}
        }
    }
    let (mut trust, _, refused) = pinned.trust(&roots, now_ms);
    if let Some(e) = refused {
        return Err(e.to_string());
    }
    if let Some(f) = trust
        .admit_all(&enrolments, &revocations)
        .into_iter()
        .next()
    {
        return Err(f.to_string());
    }
    let mut views = Vec::new();
    for env in &summaries {
        views.push(trust.open_summary(env).map_err(|f| f.to_string())?);
    }
    let Some((unit, _)) = views.first() else {
        return Err("proof: no summaries".into());
    };
    for pair in views.windows(2) {
        let ((below, below_digest), (view, _)) = (&pair[0], &pair[1]);
        let reference = view
            .children
            .iter()
            .find(|c| c.region == below.region)
            .ok_or_else(|| {
                format!(
                    "summary {} {}: does not count {}",
                    view.region, view.period, below.region
                )
            })?;
        check_child(view, reference, Ok(&Found::of(below, *below_digest)))
            .map_err(|f| f.to_string())?;
    }
    for (view, _) in &views {
        check_completeness(&trust, view).map_err(|f| f.to_string())?;
    }
    let top = views.last().map(|(v, _)| v.region).unwrap_or(unit.region);
    if !trust.anchors().iter().any(|(r, _)| *r == top) {
        return Err(format!(
            "proof: the chain ends at {top}, which is not a trust anchor's region"
        ));
    }
    // The header is not signed: what it claims must be what was proven.
    let header = header.ok_or("proof: no header naming the unit and month it proves")?;
    let claimed = (
        RegionCode::parse(&header.region).ok(),
        Month::parse(&header.period).ok(),
    );
    if claimed != (Some(unit.region), Some(unit.period)) {
        return Err(format!(
            "proof: the header claims {} {}, but the signed summary proven is of {} {}",
            header.region, header.period, unit.region, unit.period
        ));
    }
    Ok(ProofReport {
        unit: unit.clone(),
        chain: views[1..].iter().map(|(v, _)| v.clone()).collect(),
    })
}
