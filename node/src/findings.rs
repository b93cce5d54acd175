//! The node's findings: the aggregator's [`Engine`] over the summaries this
//! node counts, loaded from the store on first use and kept current as the
//! node signs: each new revision of its own month is walked down its
//! counted tree, and only units whose counted digest changed are given to
//! the engine (an unchanged digest means an unchanged subtree).

use std::sync::Mutex;

use tallytree_aggregator::{
    SummaryView,
    findings::{Earlier, Engine, Enrolled, Figures, Filter, Params},
};
use tallytree_proto::{Month, RegionCode, pb};

use crate::{
    context::NodeContext,
    store::{
        Cf, Store, StoreError,
        layout::{self, SummaryRow},
        try_scan,
    },
};

/// This node's findings, loaded on first use.
#[derive(Debug)]
pub struct FindingsIndex {
    params: Params,
    engine: Mutex<Option<Engine>>,
}

impl FindingsIndex {
    /// An index with thresholds `params`, empty until first used.
    pub fn new(params: Params) -> FindingsIndex {
        FindingsIndex {
            params,
            engine: Mutex::new(None),
        }
    }

    /// The thresholds.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Brings the engine up to date with this node's latest summaries of
    /// `months` (a no-op until the index is first read: loading then reads
    /// everything). Blocking.
    pub fn signed(&self, ctx: &NodeContext, months: &[Month]) -> Result<(), StoreError> {
        let mut guard = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        let Some(engine) = guard.as_mut() else {
            return Ok(());
        };
        sync(ctx, engine, months)
    }

    /// The findings `filter` selects as of `as_of_ms`, each with its
    /// unit's name and path from this node, loading the index first if
    /// needed. Blocking.
    pub fn select(
        &self,
        ctx: &NodeContext,
        filter: &Filter,
        as_of_ms: i64,
    ) -> Result<Vec<pb::Finding>, StoreError> {
        let mut guard = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let mut engine = Engine::new(ctx.identity.region, self.params.clone());
            let months = own_months(ctx.ledger.store(), ctx.identity.region)?;
            sync(ctx, &mut engine, &months)?;
            *guard = Some(engine);
        }
        let engine = guard.as_ref().expect("loaded above");
        let panel = engine.panel();
        let trust = ctx.trust();
        // A unit that never reported has no summary to name it: its
        // enrolment does.
        let name = |region: RegionCode| {
            panel
                .units
                .get(&region)
                .map(|u| u.name.clone())
                .filter(|n| !n.is_empty())
                .or_else(|| trust.name_of(region).map(str::to_owned))
                .unwrap_or_else(|| region.to_string())
        };
        Ok(engine
            .findings(as_of_ms)
            .iter()
            .filter(|f| filter.matches(f))
            .map(|f| {
                let name = name(f.region);
                let path = match f.region.parent().filter(|p| p.is_within(panel.top)) {
                    Some(parent) => format!("{} › {name}", panel.path(parent)),
                    None => name.clone(),
                };
                f.to_pb(&name, &path)
            })
            .collect())
    }
}

/// Every month this node has signed a summary of.
fn own_months(store: &dyn Store, region: RegionCode) -> Result<Vec<Month>, StoreError> {
    let prefix = region.as_u64().to_be_bytes();
    let mut months = Vec::new();
    try_scan(store, Cf::Summaries, &prefix, |k, _| {
        let month = layout::month_of_key(&k[prefix.len()..], "summaries")?;
        if months.last() != Some(&month) {
            months.push(month);
        }
        Ok(())
    })?;
    Ok(months)
}

/// Walks the counted tree of this node's latest summary of each month,
/// giving the engine every unit whose counted revision changed, then
/// recomputes what those changes touch.
fn sync(ctx: &NodeContext, engine: &mut Engine, months: &[Month]) -> Result<(), StoreError> {
    let top = ctx.identity.region;
    let enrolled = Enrolled::all(&ctx.trust(), top);
    for (region, enrolled) in enrolled {
        engine.enrol(region, enrolled);
    }
    let store = ctx.ledger.store();
    for &month in months {
        if let Some(row) = layout::latest_summary(store, top, month)? {
            visit(store, engine, &row, month)?;
        }
    }
    engine.refresh();
    Ok(())
}

fn visit(
    store: &dyn Store,
    engine: &mut Engine,
    row: &SummaryRow,
    month: Month,
) -> Result<(), StoreError> {
    let digest = row.digest()?;
    let view = row.view()?;
    if engine.panel().figures(view.region, month).map(|f| f.digest) == Some(digest) {
        return Ok(());
    }
    for child in &view.children {
        if let Some(child_row) = layout::summary_at(store, child.region, month, child.revision)? {
            visit(store, engine, &child_row, month)?;
        }
    }
    let figures = figures_of(store, engine.params(), &view, digest)?;
    engine.insert(view.region, &view.name, month, figures);
    Ok(())
}

/// The figures of a counted summary, with the earlier revisions held that
/// the timing rules read: the first, and the last signed by the deadline.
fn figures_of(
    store: &dyn Store,
    params: &Params,
    view: &SummaryView,
    digest: tallytree_proto::Digest,
) -> Result<Figures, StoreError> {
    let mut figures = Figures::of(view, digest);
    if view.revision > 1 {
        let deadline = params.deadline_ms(view.period);
        let mut earlier = Vec::new();
        for row in layout::summary_revisions(store, view.region, view.period)? {
            let v = row.view()?;
            if v.revision < view.revision {
                earlier.push(Earlier::of(&v, row.digest()?));
            }
        }
        if let Some(&first) = earlier.first() {
            figures.earlier.push(first);
            if let Some(&at_close) = earlier.iter().rev().find(|e| e.issued_at_ms <= deadline)
                && at_close.revision != first.revision
            {
                figures.earlier.push(at_close);
            }
        }
    }
    Ok(figures)
}
