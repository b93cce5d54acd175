//! Queries: the figures of a region of this node's subtree for a period, and
//! of its descendants down to a depth.
//!
//! Figures come from signed summaries only. A region's month is its latest
//! revision; a child's month is the exact revision its parent's summary
//! counted, so a drill-down always adds up.

mod completeness;
mod findings;

use std::{collections::BTreeSet, sync::Arc};

use tallytree_aggregator::{SummaryView, Tally};
use tallytree_proto::{Month, PeriodRange, RegionCode, pb};

use crate::{
    context::NodeContext,
    store::{
        StoreError,
        layout::{self, SummaryRow},
    },
};

pub use completeness::{Completeness, ReportStatus, UnitReports};

/// Deepest drill-down: province to village is four levels.
pub const MAX_DEPTH: u32 = 4;

/// Why a query cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The region is not in this node's subtree.
    #[error("region ({region}): not in the subtree of this node ({node})")]
    OutsideSubtree {
        /// Asked for.
        region: RegionCode,
        /// This node's region.
        node: RegionCode,
    },
    /// The unit's figures are not counted in this node's summary.
    #[error("region: {0}")]
    NotCounted(String),
    /// Depth beyond the tree.
    #[error("depth ({0}): at most {MAX_DEPTH}")]
    Depth(u32),
    /// A findings selection that cannot be made.
    #[error(transparent)]
    Filter(#[from] tallytree_aggregator::findings::FilterError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The query side of a node.
#[derive(Debug, Clone)]
pub struct Query {
    /// Store, identity, clock and the enrolments of the subtree.
    ctx: Arc<NodeContext>,
}

/// A month's figures as one region's row needs them.
struct MonthEntry {
    view: SummaryView,
    row: SummaryRow,
    digest: String,
    key_id: String,
}

impl Query {
    /// Queries over `ledger` for the node `identity`.
    pub fn new(ctx: Arc<NodeContext>) -> Query {
        Query { ctx }
    }

    /// This node's region: the default of every call.
    pub fn region(&self) -> RegionCode {
        self.ctx.identity.region
    }

    fn store(&self) -> &dyn crate::store::Store {
        self.ctx.ledger.store()
    }

    /// Rows for `region` (default: this node's) and its descendants to `depth`.
    /// Blocking.
    pub fn tally(
        &self,
        region: Option<RegionCode>,
        range: PeriodRange,
        depth: u32,
    ) -> Result<pb::TallyResponse, QueryError> {
        let region = region.unwrap_or(self.ctx.identity.region);
        if !region.is_within(self.ctx.identity.region) {
            return Err(QueryError::OutsideSubtree {
                region,
                node: self.ctx.identity.region,
            });
        }
        if depth > MAX_DEPTH {
            return Err(QueryError::Depth(depth));
        }
        let now = self.ctx.clock.month();
        let dirty: BTreeSet<Month> = layout::dirty_months(self.store())?
            .into_iter()
            .filter(|m| *m <= now)
            .collect();
        let mut rows = Vec::new();
        // The requested region: its latest revision of each month.
        let mut entries = Vec::new();
        for month in range.months() {
            let latest = layout::latest_summary(self.store(), region, month)?;
            entries.push((month, latest.map(entry).transpose()?));
        }
        let pending =
            region == self.ctx.identity.region && range.months().any(|m| dirty.contains(&m));
        self.walk(region, 0, depth, &entries, pending, &mut rows)?;
        Ok(pb::TallyResponse {
            rows,
            category_list_version: tallytree_proto::CATEGORY_LIST_VERSION,
        })
    }

    fn walk(
        &self,
        region: RegionCode,
        level: u32,
        depth: u32,
        entries: &[(Month, Option<MonthEntry>)],
        pending: bool,
        rows: &mut Vec<pb::RegionRow>,
    ) -> Result<(), QueryError> {
        rows.push(self.row(region, level, entries, pending));
        if level >= depth {
            return Ok(());
        }
        // Children: every child enrolled or counted by any month's summary,
        // each month at the exact revision counted (none where not counted).
        let mut children: BTreeSet<RegionCode> = entries
            .iter()
            .filter_map(|(_, e)| e.as_ref())
            .flat_map(|e| e.view.children.iter().map(|c| c.region))
            .collect();
        children.extend(self.ctx.trust().enrolled_children(region, i64::MAX));
        for child in children {
            let mut child_entries = Vec::with_capacity(entries.len());
            for (month, e) in entries {
                let counted = e
                    .as_ref()
                    .and_then(|e| e.view.children.iter().find(|c| c.region == child));
                let found = match counted {
                    Some(c) => layout::summary_at(self.store(), child, *month, c.revision)?
                        .map(entry)
                        .transpose()?,
                    None => None,
                };
                child_entries.push((*month, found));
            }
            self.walk(child, level + 1, depth, &child_entries, false, rows)?;
        }
        Ok(())
    }

    fn row(
        &self,
        region: RegionCode,
        level: u32,
        entries: &[(Month, Option<MonthEntry>)],
        pending: bool,
    ) -> pb::RegionRow {
        let mut total = Tally::default();
        let mut months = Vec::new();
        let mut missing = Vec::new();
        let (mut reported, mut expected) = (0u32, 0u32);
        let mut verified = true;
        let mut name = if region == self.ctx.identity.region {
            Some(self.ctx.identity.name.clone())
        } else {
            self.ctx.trust().name_of(region).map(str::to_owned)
        };
        for (month, e) in entries {
            let Some(e) = e else {
                missing.push(month.to_string());
                continue;
            };
            // Stored summaries passed their checks, so their sum cannot
            // overflow in practice; saturate rather than fail a query.
            total = total.checked_add(&e.view.total).unwrap_or(total);
            reported += e.view.children.len() as u32;
            expected += e.view.children_expected;
            verified &= e.row.verified;
            name.get_or_insert_with(|| e.view.name.clone());
            months.push(pb::MonthFigures {
                period: month.to_string(),
                total: Some(e.view.total.to_pb()),
                local: Some(e.view.local.to_pb()),
                revision: e.view.revision,
                digest: e.digest.clone(),
                issued_at_ms: e.view.issued_at_ms,
                received_at_ms: e.row.received_at_ms,
                children_reported: e.view.children.len() as u32,
                children_expected: e.view.children_expected,
                verified: e.row.verified,
                key_id: e.key_id.clone(),
            });
        }
        let r = total.rates();
        pb::RegionRow {
            region: region.to_string(),
            name: name.unwrap_or_default(),
            level: region.level().to_string(),
            depth: level,
            total: Some(total.to_pb()),
            rates: Some(pb::Rates {
                resolution: r.resolution,
                on_time: r.on_time,
                escalation: r.escalation,
                task_completion: r.task_completion,
            }),
            months,
            months_missing: missing,
            children_reported: reported,
            children_expected: expected,
            verified,
            pending,
        }
    }

    /// Every stored revision of `region`'s summary for `month`, oldest first.
    /// Blocking.
    pub fn revisions(
        &self,
        region: RegionCode,
        month: Month,
    ) -> Result<Vec<pb::Envelope>, QueryError> {
        if !region.is_within(self.ctx.identity.region) {
            return Err(QueryError::OutsideSubtree {
                region,
                node: self.ctx.identity.region,
            });
        }
        Ok(layout::summary_revisions(self.store(), region, month)?
            .into_iter()
            .filter_map(|r| r.envelope)
            .collect())
    }
}

/// One revision of a summary as this node holds it.
#[derive(Debug, Clone)]
pub struct HeldRevision {
    /// What it says.
    pub view: SummaryView,
    /// As signed.
    pub envelope: pb::Envelope,
    /// SHA-256 of its payload, hex.
    pub digest: String,
    /// When this node received (or signed) it.
    pub received_at_ms: i64,
    /// Whether its signature and arithmetic were checked here.
    pub verified: bool,
}

impl Query {
    /// The months of this node's own records changed since it last signed
    /// them (up to the current month). Blocking.
    pub fn pending_months(&self) -> Result<BTreeSet<Month>, QueryError> {
        let now = self.ctx.clock.month();
        Ok(layout::dirty_months(self.store())?
            .into_iter()
            .filter(|m| *m <= now)
            .collect())
    }

    /// Every revision of `region`'s summary for `month` held here, oldest
    /// first, and the revision its parent's summary held here counts (if
    /// any). Blocking.
    pub fn history(
        &self,
        region: RegionCode,
        month: Month,
    ) -> Result<(Vec<HeldRevision>, Option<u64>), QueryError> {
        if !region.is_within(self.ctx.identity.region) {
            return Err(QueryError::OutsideSubtree {
                region,
                node: self.ctx.identity.region,
            });
        }
        let store = self.store();
        let mut out = Vec::new();
        for row in layout::summary_revisions(store, region, month)? {
            let Some(envelope) = row.envelope.clone() else {
                continue;
            };
            out.push(HeldRevision {
                view: row.view()?,
                digest: row.digest()?.to_hex(),
                received_at_ms: row.received_at_ms,
                verified: row.verified,
                envelope,
            });
        }
        let counted = match region
            .parent()
            .filter(|p| p.is_within(self.ctx.identity.region))
        {
            Some(parent) => layout::latest_summary(store, parent, month)?
                .map(|row| row.view())
                .transpose()?
                .and_then(|v| {
                    v.children
                        .iter()
                        .find(|c| c.region == region)
                        .map(|c| c.revision)
                }),
            None => None,
        };
        Ok((out, counted))
    }
}

fn entry(row: SummaryRow) -> Result<MonthEntry, StoreError> {
    let key_id = row
        .envelope
        .as_ref()
        .and_then(|e| e.signatures.first())
        .map(|s| s.keyid.clone())
        .unwrap_or_default();
    Ok(MonthEntry {
        view: row.view()?,
        digest: row.digest()?.to_hex(),
        key_id,
        row,
    })
}
