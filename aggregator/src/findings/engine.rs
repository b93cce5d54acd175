//! Computing findings: [`compute`] over a whole panel (the auditor, and the
//! definition), and [`Engine`], which keeps a parent's findings current as
//! summaries arrive by recomputing only what a changed month can affect.
//! Both run the same rule functions on the same scopes, so the engine's
//! findings equal [`compute`]'s on the same panel (a property test checks
//! it).

use std::collections::{BTreeMap, BTreeSet};

use tallytree_proto::{Month, RegionCode};

use super::{Enrolled, Figures, Finding, Panel, Params, history, reporting, siblings};

/// What one group of findings depends on; a change recomputes the scopes
/// it touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    /// One unit's month: reporting and history rules.
    Report(RegionCode, Month),
    /// The children one parent counts in a month: the sibling rules.
    Siblings(RegionCode, Month),
    /// One unit's whole series: flat lines and consistency.
    Series(RegionCode),
}

impl Scope {
    fn evaluate(self, panel: &Panel, params: &Params, out: &mut Vec<Finding>) {
        match self {
            Scope::Report(region, month) => {
                reporting::report(panel, params, region, month, out);
                history::history(panel, params, region, month, out);
            }
            Scope::Siblings(parent, month) => siblings::siblings(panel, params, parent, month, out),
            Scope::Series(region) => {
                history::flatlines(panel, params, region, out);
                history::consistency(panel, params, region, out);
            }
        }
    }
}

/// Every scope of `panel`: the units below the top are judged, and every
/// parent's children.
fn scopes(panel: &Panel) -> impl Iterator<Item = Scope> + '_ {
    panel.units.iter().flat_map(move |(&region, unit)| {
        let below = region != panel.top;
        let reports = unit
            .months
            .keys()
            .filter(move |_| below)
            .map(move |&m| Scope::Report(region, m));
        let siblings = unit
            .months
            .iter()
            .filter(|(_, f)| !f.children.is_empty())
            .map(move |(&m, _)| Scope::Siblings(region, m));
        let series = below.then_some(Scope::Series(region));
        reports.chain(siblings).chain(series)
    })
}

/// Sorts findings into their listing order.
fn sorted(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| {
        a.sort_key()
            .cmp(&b.sort_key())
            .then(a.period.cmp(&b.period))
    });
    findings
}

/// Every finding of `panel` as of `as_of_ms` (which decides only which
/// months are past their deadline for the missing-report rule).
pub fn compute(panel: &Panel, params: &Params, as_of_ms: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    for scope in scopes(panel) {
        scope.evaluate(panel, params, &mut out);
    }
    reporting::missing(panel, params, as_of_ms, &mut out);
    sorted(out)
}

/// A parent's findings, kept current: [`Engine::insert`] a unit's new
/// counted month, [`Engine::refresh`], read [`Engine::findings`].
#[derive(Debug)]
pub struct Engine {
    params: Params,
    panel: Panel,
    /// The findings of each evaluated scope.
    held: BTreeMap<Scope, Vec<Finding>>,
    /// Scopes to evaluate again.
    dirty: BTreeSet<Scope>,
}

impl Engine {
    /// An engine for the subtree of `top`.
    pub fn new(top: RegionCode, params: Params) -> Engine {
        Engine {
            params,
            panel: Panel::new(top),
            held: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// The panel the findings are computed from.
    pub fn panel(&self) -> &Panel {
        &self.panel
    }

    /// The thresholds.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Records an enrolment (it matters only to missing reports, which are
    /// computed when read).
    pub fn enrol(&mut self, region: RegionCode, enrolled: Enrolled) {
        self.panel.enrol(region, enrolled);
    }

    /// Sets `region`'s counted figures for `month` and marks what they can
    /// change: the unit's later months that read this one as history, its
    /// parent's and its own sibling groups, its series and its children's
    /// (whose consistency compares with it).
    pub fn insert(&mut self, region: RegionCode, name: &str, month: Month, figures: Figures) {
        if self.panel.figures(region, month) == Some(&figures) {
            return;
        }
        self.panel.insert(region, name, month, figures);
        let top = self.panel.top;
        if region != top {
            let reach = self
                .params
                .outlier_window
                .max(self.params.spike_window)
                .max(12 * self.params.seasonal_max_years + 1);
            let last = Month::from_index(month.index() + reach).unwrap_or(month);
            if let Some(unit) = self.panel.units.get(&region) {
                self.dirty.extend(
                    unit.months
                        .range(month..=last)
                        .map(|(&m, _)| Scope::Report(region, m)),
                );
            }
            self.dirty.insert(Scope::Series(region));
            if let Some(parent) = region.parent() {
                self.dirty.insert(Scope::Siblings(parent, month));
            }
        }
        self.dirty.insert(Scope::Siblings(region, month));
        let children: Vec<RegionCode> = self.panel.children_of(region).collect();
        self.dirty.extend(children.into_iter().map(Scope::Series));
    }

    /// Evaluates every scope marked since the last refresh; returns how
    /// many.
    pub fn refresh(&mut self) -> usize {
        let dirty = std::mem::take(&mut self.dirty);
        let count = dirty.len();
        for scope in dirty {
            let mut out = Vec::new();
            scope.evaluate(&self.panel, &self.params, &mut out);
            if out.is_empty() {
                self.held.remove(&scope);
            } else {
                self.held.insert(scope, out);
            }
        }
        count
    }

    /// Every finding as of `as_of_ms`, in listing order (call
    /// [`Engine::refresh`] first).
    pub fn findings(&self, as_of_ms: i64) -> Vec<Finding> {
        let mut out: Vec<Finding> = self.held.values().flatten().cloned().collect();
        reporting::missing(&self.panel, &self.params, as_of_ms, &mut out);
        sorted(out)
    }
}
