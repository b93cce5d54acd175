//! Inclusion proofs: a unit's signed summary and the chain of ancestor
//! summaries that count it, up to a trust anchor, verified offline.

use tallytree_proto::{PublicKey, RegionCode, pb};

use crate::{summary::SummaryView, verify::Trust};

/// A verified inclusion proof.
#[derive(Debug, Clone)]
pub struct ProofReport {
    /// The unit proven, its summary.
    pub unit: SummaryView,
    /// The chain from the unit's parent up to the top.
    pub chain: Vec<SummaryView>,
}

/// Verifies an inclusion proof: each summary signed by its enrolled key
/// (chained to the anchors), each one counted by the next by digest and
/// revision, all of one period, the last signed by an anchor's region.
pub fn verify_proof(
    items: impl IntoIterator<Item = pb::EvidenceItem>,
    anchors: &[(RegionCode, PublicKey)],
) -> Result<ProofReport, String> {
    use pb::evidence_item::Item;
    let mut trust = Trust::default();
    for (r, k) in anchors {
        trust.add_anchor(*r, *k);
    }
    let mut enrolments = Vec::new();
    let mut revocations = Vec::new();
    let mut summaries = Vec::new();
    for item in items {
        match item.item {
            Some(Item::Enrolment(e)) => enrolments.push(e),
            Some(Item::Revocation(r)) => revocations.push(r),
            Some(Item::Summary(s)) => summaries.push(s),
            _ => {}
        }
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
        let counted = view
            .children
            .iter()
            .find(|c| c.region == below.region)
            .ok_or_else(|| {
                format!(
                    "summary {} {}: does not count {}",
                    view.region, view.period, below.region
                )
            })?;
        if counted.digest != *below_digest || counted.revision != below.revision {
            return Err(format!(
                "summary {} {}: counts {} revision {}, not the proven revision {}",
                view.region, view.period, counted.region, counted.revision, below.revision
            ));
        }
        if view.period != below.period {
            return Err(format!(
                "summary {}: period {} differs from {}",
                view.region, view.period, below.period
            ));
        }
    }
    let top = views.last().map(|(v, _)| v.region).unwrap_or(unit.region);
    if !anchors.iter().any(|(r, _)| *r == top) {
        return Err(format!(
            "proof: the chain ends at {top}, which is not a trust anchor's region"
        ));
    }
    Ok(ProofReport {
        unit: unit.clone(),
        chain: views[1..].iter().map(|(v, _)| v.clone()).collect(),
    })
}
