//! The roll-up rules, written once: each child summary a roll-up references
//! is present and is the one referenced (digest, region, revision, month),
//! `total == local + sum of the child totals`, and `children_expected` is
//! the number of children enrolled when the roll-up was issued.
//!
//! A parent runs them on a submission ([`crate::verify_opened`]), the
//! auditor on every summary of a bundle ([`crate::audit::Auditor`]), and
//! the inclusion proof on each link of its chain
//! ([`crate::audit::verify_proof`]), so the three cannot disagree. Each
//! finds its child summaries its own way (the store, the bundle, the next
//! link) and hands them here as [`Found`].

use tallytree_proto::{Digest, Month, RegionCode};

use crate::{
    defect::{Absence, Defect, Mismatch},
    summary::{ChildEntry, SummaryView},
    tally::Tally,
    trust::Trust,
};

/// A verified child summary found for a reference: what the rules read of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Found {
    /// The region it is of.
    pub region: RegionCode,
    /// Its revision.
    pub revision: u64,
    /// Its month.
    pub period: Month,
    /// SHA-256 of its payload.
    pub digest: Digest,
    /// Its total, which the parent's total sums.
    pub total: Tally,
}

impl Found {
    /// The facts of a verified summary.
    pub fn of(view: &SummaryView, digest: Digest) -> Found {
        Found {
            region: view.region,
            revision: view.revision,
            period: view.period,
            digest,
            total: view.total,
        }
    }
}

/// Checks that `found` is the child summary `reference` (one of `parent`'s
/// child references) names: present, same digest, region and revision, and
/// of the parent's month.
pub fn check_child(
    parent: &SummaryView,
    reference: &ChildEntry,
    found: Result<&Found, Absence>,
) -> Result<(), Defect> {
    let mismatch = |mismatch| Defect::ChildMismatch {
        region: parent.region,
        period: parent.period,
        child: reference.region,
        mismatch,
    };
    let found = found.map_err(|absence| Defect::MissingChild {
        region: parent.region,
        period: parent.period,
        child: reference.region,
        revision: reference.revision,
        absence,
    })?;
    if found.digest != reference.digest {
        return Err(mismatch(Mismatch::Digest {
            revision: reference.revision,
        }));
    }
    if found.region != reference.region || found.revision != reference.revision {
        return Err(mismatch(Mismatch::Identity {
            revision: reference.revision,
            found_region: found.region,
            found_revision: found.revision,
        }));
    }
    if found.period != parent.period {
        return Err(mismatch(Mismatch::Period {
            found: found.period,
        }));
    }
    Ok(())
}

/// The children of one roll-up, checked one by one with [`check_child`],
/// then its total against theirs.
#[derive(Debug)]
pub struct ChildRefs<'v> {
    /// The roll-up.
    parent: &'v SummaryView,
    /// Totals of the children that matched their reference.
    totals: Vec<Tally>,
    /// Children checked so far.
    checked: usize,
    /// Whether every child checked so far matched.
    all_match: bool,
}

impl<'v> ChildRefs<'v> {
    /// Starts checking `parent`'s children.
    pub fn new(parent: &'v SummaryView) -> ChildRefs<'v> {
        ChildRefs {
            parent,
            totals: Vec::with_capacity(parent.children.len()),
            checked: 0,
            all_match: true,
        }
    }

    /// Checks the child summary found for `reference`; when it matches, its
    /// total counts towards the parent's.
    pub fn child(
        &mut self,
        reference: &ChildEntry,
        found: Result<Found, Absence>,
    ) -> Result<(), Defect> {
        self.checked += 1;
        let result = check_child(self.parent, reference, found.as_ref().map_err(|a| *a));
        match (result, found) {
            (Ok(()), Ok(found)) => {
                self.totals.push(found.total);
                Ok(())
            }
            (result, _) => {
                self.all_match = false;
                result
            }
        }
    }

    /// `total == local + sum of the child totals`, once every child has been
    /// checked. When a child is missing or mismatched, that is the defect
    /// and the sum is not checked (it would only repeat it).
    pub fn check_total(self) -> Result<(), Defect> {
        debug_assert_eq!(self.checked, self.parent.children.len());
        if !self.all_match {
            return Ok(());
        }
        self.parent.check_total(&self.totals).map_err(Defect::from)
    }
}

/// Completeness: `children_expected` equals the children enrolled under the
/// summary's region when it was issued.
pub fn check_completeness(trust: &Trust, view: &SummaryView) -> Result<(), Defect> {
    let enrolled = trust
        .enrolled_children(view.region, view.issued_at_ms)
        .len();
    if view.children_expected as usize != enrolled {
        return Err(Defect::Completeness {
            region: view.region,
            period: view.period,
            stated: view.children_expected,
            enrolled,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tallytree_proto::{Category, PublicKey, SigningKey, pb, statement};

    use super::*;
    use crate::tally::CaseCounts;

    fn code(s: &str) -> RegionCode {
        RegionCode::parse(s).expect("code")
    }

    fn month(s: &str) -> Month {
        Month::parse(s).expect("month")
    }

    fn tally(registered: u64) -> Tally {
        let mut t = Tally::default();
        *t.category_mut(Category::Land) = CaseCounts {
            registered,
            resolved: registered,
            escalated: 0,
            in_progress: 0,
            resolved_on_time: registered,
        };
        t
    }

    fn village(n: u64) -> Found {
        Found {
            region: code(&format!("21021400100{n}")),
            revision: n,
            period: month("2026-03"),
            digest: Digest::of(&n.to_be_bytes()),
            total: tally(n * 10),
        }
    }

    fn reference(f: &Found) -> ChildEntry {
        ChildEntry {
            region: f.region,
            revision: f.revision,
            digest: f.digest,
        }
    }

    /// A street counting villages 1 and 2, issued at 1000.
    fn street() -> SummaryView {
        let (a, b) = (village(1), village(2));
        let local = tally(1);
        let total = [a.total, b.total]
            .iter()
            .fold(local, |s, t| s.checked_add(t).expect("sum"));
        SummaryView {
            region: code("210214001000"),
            name: "铁西街道".into(),
            parent: Some(code("210214000000")),
            period: month("2026-03"),
            revision: 3,
            issued_at_ms: 1000,
            local,
            total,
            children: vec![reference(&a), reference(&b)],
            children_expected: 2,
        }
    }

    #[test]
    fn children_as_referenced_add_up() {
        let view = street();
        let mut refs = ChildRefs::new(&view);
        refs.child(&view.children[0], Ok(village(1))).expect("v1");
        refs.child(&view.children[1], Ok(village(2))).expect("v2");
        refs.check_total().expect("adds up");
    }

    #[test]
    fn a_missing_child_is_named_with_why_and_the_sum_is_not_checked() {
        let view = street();
        for (absence, says) in [
            (Absence::NotProvided, "is referenced but not provided"),
            (Absence::DidNotVerify, "did not verify"),
        ] {
            let mut refs = ChildRefs::new(&view);
            refs.child(&view.children[0], Ok(village(1))).expect("v1");
            let f = refs
                .child(&view.children[1], Err(absence))
                .expect_err("missing");
            assert_eq!(
                f.to_string(),
                format!("summary 210214001000 2026-03: child 210214001002 revision 2 {says}")
            );
            assert!(matches!(f, Defect::MissingChild { absence: a, .. } if a == absence));
            refs.check_total().expect("not summed over a missing child");
        }
    }

    #[test]
    fn a_child_that_is_not_the_one_referenced_is_a_mismatch() {
        let view = street();
        let reference = &view.children[0];
        let mut other_digest = village(1);
        other_digest.digest = Digest::of(b"another payload");
        let mut other_revision = village(1);
        other_revision.revision = 7;
        let mut other_month = village(1);
        other_month.period = month("2026-02");
        for (found, rule) in [
            (
                other_digest,
                "revision 1 does not match its reference (digest differs)",
            ),
            (
                other_revision,
                "revision 1 does not match its reference (the summary found is 210214001001 revision 7)",
            ),
            (other_month, "is a summary of another period (2026-02)"),
        ] {
            let f = check_child(&view, reference, Ok(&found)).expect_err(rule);
            assert_eq!(
                f.to_string(),
                format!("summary 210214001000 2026-03: child 210214001001 {rule}")
            );
            assert!(matches!(f, Defect::ChildMismatch { .. }), "{f}");
            // And the total is not summed over it.
            let mut refs = ChildRefs::new(&view);
            assert!(refs.child(reference, Ok(found)).is_err());
            refs.child(&view.children[1], Ok(village(2))).expect("v2");
            refs.check_total().expect("skipped");
        }
    }

    #[test]
    fn a_total_that_does_not_add_up_is_a_summary_finding() {
        let mut view = street();
        view.total.category_mut(Category::Land).registered += 1;
        view.total.category_mut(Category::Land).resolved += 1;
        let mut refs = ChildRefs::new(&view);
        refs.child(&view.children[0], Ok(village(1))).expect("v1");
        refs.child(&view.children[1], Ok(village(2))).expect("v2");
        let f = refs.check_total().expect_err("off by one");
        assert!(
            f.to_string()
                .contains("total != local + sum of 2 child totals"),
            "{f}"
        );
    }

    fn enrolment(parent: &SigningKey, region: &str, valid_from_ms: i64) -> pb::Envelope {
        let (key, _) = SigningKey::generate().expect("key");
        let e = pb::Enrolment {
            parent: "210214001000".into(),
            region: region.into(),
            name: "村".into(),
            public_key: key.public_key().0.to_vec(),
            serial: 1,
            valid_from_ms,
            issued_at_ms: valid_from_ms,
            tls_spki_sha256: Vec::new(),
        };
        statement::seal(parent, &e).envelope
    }

    #[test]
    fn completeness_counts_the_children_enrolled_at_issue_time() {
        let (street_key, _) = SigningKey::generate().expect("key");
        let anchor: PublicKey = street_key.public_key();
        let mut trust = Trust::with_anchor(code("210214001000"), anchor);
        for (v, from) in [
            ("210214001001", 0),
            ("210214001002", 500),
            ("210214001003", 2000),
        ] {
            trust
                .admit_enrolment(&enrolment(&street_key, v, from))
                .expect("enrolment");
        }
        // Issued at 1000: two enrolled (the third only from 2000).
        let view = street();
        check_completeness(&trust, &view).expect("two expected, two enrolled");
        let mut three = street();
        three.children_expected = 3;
        let f = check_completeness(&trust, &three).expect_err("three expected");
        assert_eq!(
            f.to_string(),
            "summary 210214001000 2026-03: children_expected is 3 but 2 children are enrolled"
        );
        three.issued_at_ms = 2000;
        check_completeness(&trust, &three).expect("three by then");
    }
}
