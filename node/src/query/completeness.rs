//! Who has reported: for the units directly below a region, each month's
//! report status, from the summaries this node holds and the enrolments it
//! trusts. This is what district staff chase every month.

use chrono::Days;
use tallytree_proto::{Month, PeriodRange, RegionCode};

use super::{Query, QueryError};
use crate::store::layout;

/// A unit's report for one month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportStatus {
    /// Signed in time and verified.
    Received {
        /// When its first revision was signed (Unix ms).
        first_signed_ms: i64,
        /// The latest revision held.
        revision: u64,
    },
    /// Its first revision was signed after the month's deadline.
    Late {
        /// When its first revision was signed (Unix ms).
        first_signed_ms: i64,
        /// The latest revision held.
        revision: u64,
    },
    /// Held, but its signature and arithmetic were not checked here (it
    /// came with a subtree whose own parent checked it).
    NotVerified {
        /// The latest revision held.
        revision: u64,
    },
    /// No report, and the deadline has passed.
    Missing,
    /// No report yet; the deadline has not passed.
    NotDue,
}

impl ReportStatus {
    /// A short code: received, late, not_verified, missing, not_due.
    pub fn code(self) -> &'static str {
        match self {
            ReportStatus::Received { .. } => "received",
            ReportStatus::Late { .. } => "late",
            ReportStatus::NotVerified { .. } => "not_verified",
            ReportStatus::Missing => "missing",
            ReportStatus::NotDue => "not_due",
        }
    }
}

/// One unit's row.
#[derive(Debug, Clone)]
pub struct UnitReports {
    /// The unit.
    pub region: RegionCode,
    /// Its name.
    pub name: String,
    /// One status per month of the range.
    pub months: Vec<ReportStatus>,
}

impl UnitReports {
    /// Months missing.
    pub fn missing(&self) -> usize {
        self.count(|s| s == ReportStatus::Missing)
    }

    /// Months late.
    pub fn late(&self) -> usize {
        self.count(|s| matches!(s, ReportStatus::Late { .. }))
    }

    fn count(&self, f: impl Fn(ReportStatus) -> bool) -> usize {
        self.months.iter().filter(|s| f(**s)).count()
    }
}

/// The report status of every unit below a region.
#[derive(Debug, Clone)]
pub struct Completeness {
    /// The months, in order.
    pub months: Vec<Month>,
    /// Units with missing months first (most missing first), then late
    /// ones, then by code.
    pub units: Vec<UnitReports>,
    /// The deadline rule: days after the month's end.
    pub late_after_days: u32,
}

impl Query {
    /// The report status of the units directly below `region` for each
    /// month of `range`. A unit is expected when enrolled here or counted
    /// by `region`'s summary of the month; a report is late when its first
    /// revision was signed more than `late_after_days` after the month's
    /// end (in the unit's time zone). Blocking.
    pub fn completeness(
        &self,
        region: RegionCode,
        range: PeriodRange,
        late_after_days: u32,
    ) -> Result<Completeness, QueryError> {
        if !region.is_within(self.ctx.identity.region) {
            return Err(QueryError::OutsideSubtree {
                region,
                node: self.ctx.identity.region,
            });
        }
        let store = self.store();
        let months: Vec<Month> = range.months().collect();
        let mut units = self.ctx.trust().enrolled_children(region, i64::MAX);
        for m in &months {
            if let Some(row) = layout::latest_summary(store, region, *m)? {
                units.extend(row.view()?.children.iter().map(|c| c.region));
            }
        }
        let now = self.ctx.clock.now_ms();
        let deadlines: Vec<i64> = months
            .iter()
            .map(|m| {
                let day = m.next().first_day() + Days::new(u64::from(late_after_days));
                self.ctx.clock.start_of(day)
            })
            .collect();
        let mut out = Vec::with_capacity(units.len());
        for unit in units {
            let mut statuses = Vec::with_capacity(months.len());
            let mut name = self.ctx.trust().name_of(unit).map(str::to_owned);
            for (m, deadline) in months.iter().zip(&deadlines) {
                let revisions = layout::summary_revisions(store, unit, *m)?;
                let (Some(first), Some(last)) = (revisions.first(), revisions.last()) else {
                    statuses.push(if now >= *deadline {
                        ReportStatus::Missing
                    } else {
                        ReportStatus::NotDue
                    });
                    continue;
                };
                let (first_view, last_view) = (first.view()?, last.view()?);
                name.get_or_insert_with(|| last_view.name.clone());
                let revision = last_view.revision;
                let first_signed_ms = first_view.issued_at_ms;
                statuses.push(if !last.verified {
                    ReportStatus::NotVerified { revision }
                } else if first_signed_ms >= *deadline {
                    ReportStatus::Late {
                        first_signed_ms,
                        revision,
                    }
                } else {
                    ReportStatus::Received {
                        first_signed_ms,
                        revision,
                    }
                });
            }
            out.push(UnitReports {
                region: unit,
                name: name.unwrap_or_else(|| unit.to_string()),
                months: statuses,
            });
        }
        out.sort_by(|a, b| {
            b.missing()
                .cmp(&a.missing())
                .then(b.late().cmp(&a.late()))
                .then(a.region.cmp(&b.region))
        });
        Ok(Completeness {
            months,
            units: out,
            late_after_days,
        })
    }
}
