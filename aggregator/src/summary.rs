//! Signed summaries: the checks that make a summary well formed, the roll-up
//! arithmetic (`total == local + sum of child totals`), and building the
//! summary a node signs. Parents run these on every submission; auditors run
//! them on every summary of a bundle.

use tallytree_proto::{CATEGORY_LIST_VERSION, Category, Digest, Month, RegionCode, pb};

use crate::tally::{Tally, TallyError};

/// One child summary counted in a roll-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildEntry {
    /// The child unit.
    pub region: RegionCode,
    /// The revision counted.
    pub revision: u64,
    /// SHA-256 of that revision's payload.
    pub digest: Digest,
}

/// A summary decoded and checked for well-formedness; every field valid.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryView {
    /// The reporting unit.
    pub region: RegionCode,
    /// Its Chinese name.
    pub name: String,
    /// Its parent; `None` at the top of the tree.
    pub parent: Option<RegionCode>,
    /// The month covered.
    pub period: Month,
    /// Revision, from 1.
    pub revision: u64,
    /// Unix milliseconds at signing.
    pub issued_at_ms: i64,
    /// What the unit itself recorded.
    pub local: Tally,
    /// local + child totals.
    pub total: Tally,
    /// The child summaries counted, ascending by region.
    pub children: Vec<ChildEntry>,
    /// Children enrolled when signed.
    pub children_expected: u32,
}

/// A rule a summary breaks. Every message names the region, the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SummaryError {
    /// A malformed period in the summary of a known region.
    #[error("summary {region}: {reason}")]
    Period {
        /// Reporting unit.
        region: RegionCode,
        /// What is wrong with the period.
        reason: String,
    },
    /// A malformed code in a field.
    #[error("{field}: {reason}")]
    Malformed {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The parent field is not the parent the region code implies.
    #[error("summary {region}: parent {got:?} is not the parent of the region ({want:?})")]
    Parent {
        /// Reporting unit.
        region: RegionCode,
        /// Parent field.
        got: String,
        /// Parent implied by the code.
        want: String,
    },
    /// Revision 0.
    #[error("summary {region}: revision must be at least 1")]
    RevisionZero {
        /// Reporting unit.
        region: RegionCode,
    },
    /// A category list this version does not know.
    #[error(
        "summary {region}: category_list_version {got} is not supported (this build has {want})"
    )]
    CategoryList {
        /// Reporting unit.
        region: RegionCode,
        /// Version in the summary.
        got: u32,
        /// Version supported.
        want: u32,
    },
    /// A tally invariant does not hold.
    #[error("summary {region} {period}: {source}")]
    Tally {
        /// Reporting unit.
        region: RegionCode,
        /// Month.
        period: Month,
        /// The broken rule.
        source: TallyError,
    },
    /// A child reference that is not a direct child, repeated, or out of order.
    #[error("summary {region}: children[{index}] {child}: {rule}")]
    Child {
        /// Reporting unit.
        region: RegionCode,
        /// Position.
        index: usize,
        /// The child code as given.
        child: String,
        /// The rule broken.
        rule: &'static str,
    },
    /// More children counted than expected.
    #[error("summary {region}: {counted} children counted but only {expected} expected")]
    Completeness {
        /// Reporting unit.
        region: RegionCode,
        /// Children referenced.
        counted: usize,
        /// children_expected.
        expected: u32,
    },
    /// The total is not local plus the child totals.
    #[error("summary {region} {period}: total != local + sum of {children} child totals: {detail}")]
    Total {
        /// Reporting unit.
        region: RegionCode,
        /// Month.
        period: Month,
        /// Number of child totals summed.
        children: usize,
        /// The first field that differs.
        detail: String,
    },
    /// A month after the current one.
    #[error("summary {region}: period {period} is in the future (current month {now})")]
    FuturePeriod {
        /// Reporting unit.
        region: RegionCode,
        /// Month given.
        period: Month,
        /// Current month.
        now: Month,
    },
}

impl SummaryView {
    /// Decodes and checks every field: codes, parent, period, revision,
    /// category list, both tallies' invariants, child references (direct
    /// children, ascending, unique, 32-byte digests) and completeness.
    pub fn from_pb(s: &pb::Summary) -> Result<SummaryView, SummaryError> {
        let region = RegionCode::parse(&s.region).map_err(|e| SummaryError::Malformed {
            field: "region",
            reason: e.to_string(),
        })?;
        let want_parent = region.parent();
        let parent_ok = match want_parent {
            Some(p) => s.parent == p.to_string(),
            None => s.parent.is_empty(),
        };
        if !parent_ok {
            return Err(SummaryError::Parent {
                region,
                got: s.parent.clone(),
                want: want_parent.map(|p| p.to_string()).unwrap_or_default(),
            });
        }
        let period = Month::parse(&s.period).map_err(|e| SummaryError::Period {
            region,
            reason: e.to_string(),
        })?;
        if s.revision == 0 {
            return Err(SummaryError::RevisionZero { region });
        }
        if s.category_list_version != CATEGORY_LIST_VERSION {
            return Err(SummaryError::CategoryList {
                region,
                got: s.category_list_version,
                want: CATEGORY_LIST_VERSION,
            });
        }
        let tally = |t: &Option<pb::Tally>, field: &str| -> Result<Tally, SummaryError> {
            let wrap = |source| SummaryError::Tally {
                region,
                period,
                source,
            };
            let t = Tally::from_pb(&t.clone().unwrap_or_default(), field).map_err(wrap)?;
            t.check(field).map_err(wrap)?;
            Ok(t)
        };
        let local = tally(&s.local, "local")?;
        let total = tally(&s.total, "total")?;
        let mut children = Vec::with_capacity(s.children.len());
        for (index, c) in s.children.iter().enumerate() {
            let bad = |rule| SummaryError::Child {
                region,
                index,
                child: c.region.clone(),
                rule,
            };
            let child =
                RegionCode::parse(&c.region).map_err(|_| bad("not a 12-digit region code"))?;
            if !child.is_direct_child_of(region) {
                return Err(bad("not a direct child of the region"));
            }
            if children
                .last()
                .is_some_and(|l: &ChildEntry| l.region >= child)
            {
                return Err(bad("repeated or out of ascending order"));
            }
            if c.revision == 0 {
                return Err(bad("revision must be at least 1"));
            }
            let digest =
                Digest::from_slice(&c.digest).ok_or_else(|| bad("digest must be 32 bytes"))?;
            children.push(ChildEntry {
                region: child,
                revision: c.revision,
                digest,
            });
        }
        if children.len() > s.children_expected as usize {
            return Err(SummaryError::Completeness {
                region,
                counted: children.len(),
                expected: s.children_expected,
            });
        }
        Ok(SummaryView {
            region,
            name: s.name.clone(),
            parent: want_parent,
            period,
            revision: s.revision,
            issued_at_ms: s.issued_at_ms,
            local,
            total,
            children,
            children_expected: s.children_expected,
        })
    }

    /// Checks `total == local + sum(child_totals)`; the caller passes the
    /// totals of the very child summaries referenced, in any order.
    pub fn check_total<'a>(
        &self,
        child_totals: impl IntoIterator<Item = &'a Tally>,
    ) -> Result<(), SummaryError> {
        let mut n = 0;
        let mut sum = Some(self.local);
        for t in child_totals {
            n += 1;
            sum = sum.and_then(|s| s.checked_add(t));
        }
        let err = |detail: String| SummaryError::Total {
            region: self.region,
            period: self.period,
            children: n,
            detail,
        };
        let Some(sum) = sum else {
            return Err(err("the sum overflows".into()));
        };
        match first_difference(&self.total, &sum) {
            None => Ok(()),
            Some(detail) => Err(err(detail)),
        }
    }

    /// The wire form.
    pub fn to_pb(&self) -> pb::Summary {
        pb::Summary {
            region: self.region.to_string(),
            name: self.name.clone(),
            parent: self.parent.map(|p| p.to_string()).unwrap_or_default(),
            period: self.period.to_string(),
            revision: self.revision,
            issued_at_ms: self.issued_at_ms,
            local: Some(self.local.to_pb()),
            total: Some(self.total.to_pb()),
            children: self
                .children
                .iter()
                .map(|c| pb::ChildRef {
                    region: c.region.to_string(),
                    revision: c.revision,
                    digest: c.digest.0.to_vec(),
                })
                .collect(),
            children_expected: self.children_expected,
            category_list_version: CATEGORY_LIST_VERSION,
        }
    }
}

/// Refuses a month of `region` after `now`'s month.
pub fn check_not_future(region: RegionCode, period: Month, now: Month) -> Result<(), SummaryError> {
    if period > now {
        return Err(SummaryError::FuturePeriod {
            region,
            period,
            now,
        });
    }
    Ok(())
}

/// Describes the first count where `stated` and `computed` differ.
fn first_difference(stated: &Tally, computed: &Tally) -> Option<String> {
    for c in Category::ALL {
        let (a, b) = (stated.category(c), computed.category(c));
        let fields = [
            ("registered", a.registered, b.registered),
            ("resolved", a.resolved, b.resolved),
            ("escalated", a.escalated, b.escalated),
            ("in_progress", a.in_progress, b.in_progress),
            ("resolved_on_time", a.resolved_on_time, b.resolved_on_time),
        ];
        if let Some((name, x, y)) = fields.into_iter().find(|(_, x, y)| x != y) {
            return Some(format!("{c}.{name} is {x}, the sum is {y}"));
        }
    }
    let (a, b) = (stated.tasks, computed.tasks);
    let fields = [
        ("assigned", a.assigned, b.assigned),
        ("completed", a.completed, b.completed),
        ("in_progress", a.in_progress, b.in_progress),
        ("overdue", a.overdue, b.overdue),
    ];
    fields
        .into_iter()
        .find(|(_, x, y)| x != y)
        .map(|(name, x, y)| format!("tasks.{name} is {x}, the sum is {y}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tally::CaseCounts;

    fn code(s: &str) -> RegionCode {
        RegionCode::parse(s).expect("code")
    }

    fn tally(registered: u64, resolved: u64) -> Tally {
        let mut t = Tally::default();
        *t.category_mut(Category::Land) = CaseCounts {
            registered,
            resolved,
            escalated: 0,
            in_progress: registered - resolved,
            resolved_on_time: resolved,
        };
        t
    }

    fn street_view() -> SummaryView {
        let local = tally(3, 2);
        let children = [tally(10, 9), tally(5, 5)];
        let total = children
            .iter()
            .fold(local, |acc, t| acc.checked_add(t).expect("sum"));
        SummaryView {
            region: code("210214001000"),
            name: "铁西街道".into(),
            parent: Some(code("210214000000")),
            period: Month::parse("2026-03").expect("month"),
            revision: 4,
            issued_at_ms: 1,
            local,
            total,
            children: vec![
                ChildEntry {
                    region: code("210214001001"),
                    revision: 2,
                    digest: Digest::of(b"a"),
                },
                ChildEntry {
                    region: code("210214001002"),
                    revision: 7,
                    digest: Digest::of(b"b"),
                },
            ],
            children_expected: 3,
        }
    }

    #[test]
    fn a_consistent_summary_round_trips_and_adds_up() {
        let view = street_view();
        let back = SummaryView::from_pb(&view.to_pb()).expect("valid");
        assert_eq!(back, view);
        back.check_total(&[tally(10, 9), tally(5, 5)])
            .expect("adds up");
    }

    #[test]
    fn a_total_that_does_not_add_up_is_named() {
        let view = street_view();
        let msg = view
            .check_total(&[tally(10, 9), tally(6, 6)])
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "summary 210214001000 2026-03: total != local + sum of 2 child totals: land.registered is 18, the sum is 19"
        );
    }

    #[test]
    fn malformed_summaries_are_refused_with_the_rule() {
        let mut s = street_view().to_pb();
        s.parent = "210200000000".into();
        assert!(matches!(
            SummaryView::from_pb(&s),
            Err(SummaryError::Parent { .. })
        ));

        let mut s = street_view().to_pb();
        s.children.swap(0, 1);
        let msg = SummaryView::from_pb(&s).unwrap_err().to_string();
        assert!(msg.contains("out of ascending order"), "{msg}");

        let mut s = street_view().to_pb();
        s.children[0].region = "210214002001".into();
        assert!(
            SummaryView::from_pb(&s)
                .unwrap_err()
                .to_string()
                .contains("not a direct child")
        );

        let mut s = street_view().to_pb();
        s.children_expected = 1;
        assert!(matches!(
            SummaryView::from_pb(&s),
            Err(SummaryError::Completeness { .. })
        ));

        let mut s = street_view().to_pb();
        s.revision = 0;
        assert!(matches!(
            SummaryView::from_pb(&s),
            Err(SummaryError::RevisionZero { .. })
        ));

        let mut s = street_view().to_pb();
        s.period = "2026-13".into();
        assert!(
            SummaryView::from_pb(&s)
                .unwrap_err()
                .to_string()
                .starts_with("summary 210214001000: period")
        );

        let mut s = street_view().to_pb();
        if let Some(t) = s.local.as_mut() {
            t.cases[0].resolved += 1;
        }
        let msg = SummaryView::from_pb(&s).unwrap_err().to_string();
        assert!(msg.contains("local: resolved (3)"), "{msg}");

        let now = Month::parse("2026-02").expect("month");
        assert!(check_not_future(street_view().region, street_view().period, now).is_err());
    }
}
