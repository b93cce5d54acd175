//! The bundle's header is not signed: it is a claim (this region, this
//! period) that the signed summaries must bear out. Every month of the
//! claimed period needs a verified summary of each top region, and no top
//! summary may lie outside it, so a verdict never repeats an unproven
//! header.

use tallytree_proto::{PeriodRange, RegionCode, pb};

use super::{Auditor, report::Claim};

impl Auditor {
    /// Reads the header's claim.
    pub(super) fn header(&mut self, h: pb::EvidenceHeader) {
        let region = if h.region.is_empty() {
            Ok(None)
        } else {
            RegionCode::parse(&h.region).map(Some)
        };
        match (region, PeriodRange::parse(&h.period)) {
            (Ok(region), Ok(period)) => self.report.claim = Some(Claim { region, period }),
            (Err(e), _) => self.problem(None, None, format!("bundle header: region: {e}")),
            (_, Err(e)) => self.problem(None, None, format!("bundle header: {e}")),
        }
        self.report.header = Some(h);
    }

    /// Whether `region` is a top of the bundle: the region the header
    /// claims, or, when it claims none, an anchor's.
    pub(super) fn is_top(&self, region: RegionCode) -> bool {
        match self.report.claim.and_then(|c| c.region) {
            Some(top) => top == region,
            None => self.trust.anchors().iter().any(|(r, _)| *r == region),
        }
    }

    /// The tops of the bundle.
    pub(super) fn tops(&self) -> Vec<RegionCode> {
        match self.report.claim.and_then(|c| c.region) {
            Some(top) => vec![top],
            None => {
                let mut tops: Vec<RegionCode> =
                    self.trust.anchors().iter().map(|(r, _)| *r).collect();
                tops.sort();
                tops.dedup();
                tops
            }
        }
    }

    /// At the end: the claim against the verified summaries of the tops.
    pub(super) fn check_claim(&mut self) {
        if self.report.header.is_none() {
            self.problem(
                None,
                None,
                "bundle: no header naming the region and period it proves".into(),
            );
            return;
        }
        let Some(claim) = self.report.claim else {
            // Malformed: already a problem.
            return;
        };
        let period = claim.period;
        for top in self.tops() {
            let missing = self.report.months_missing(top);
            if !missing.is_empty() {
                let list: Vec<String> = missing.iter().map(ToString::to_string).collect();
                self.problem(
                    Some(top),
                    missing.iter().copied(),
                    format!(
                        "summary {top}: no verified summary for {} ({} of the {} months of the period {period} the bundle's header claims)",
                        list.join(", "),
                        missing.len(),
                        period.len()
                    ),
                );
            }
            let outside: Vec<_> = self
                .report
                .proven
                .get(&top)
                .into_iter()
                .flatten()
                .filter(|(m, _)| !period.contains(**m))
                .map(|(m, f)| (*m, f.revision))
                .collect();
            for (month, revision) in outside {
                self.problem(
                    Some(top),
                    Some(month),
                    format!(
                        "summary {top} {month} revision {revision}: outside the period {period} the bundle's header claims"
                    ),
                );
            }
        }
    }
}
