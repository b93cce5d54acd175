//! Findings: figures that need checking (需核实), computed from signed
//! summaries alone. A parent computes them for its subtree as summaries
//! arrive ([`Engine`]); an auditor recomputes them from an evidence bundle
//! ([`compute`]) and must get exactly the same list, so every rule is a pure
//! function of a [`Panel`] (the counted summaries), the [`Params`] and the
//! time the findings are taken at. docs/FINDINGS.md defines each rule, its
//! threshold and its source.
//!
//! A finding never accuses: it names the rule, the statistic, the threshold
//! and the summaries it was computed from, and somebody checks.
//!
//! - `terms`: the rules, severities, periods, measures and statistics a
//!   finding is stated in.
//! - [`stats`]: distribution tails, medians, z-scores.
//! - [`panel`]: the input, one [`Figures`] per unit and month.
//! - `reporting`: missing and late reports, revisions after close.
//! - `siblings`: proportions too good against the siblings, identical
//!   siblings.
//! - `history`: a unit against its own history: outliers, escalation and
//!   overdue spikes, flat lines, consistency over years.
//! - [`engine`](mod@engine): the incremental engine and the full computation.

pub mod engine;
mod filter;
mod history;
pub mod panel;
mod params;
mod reporting;
mod siblings;
pub mod stats;
mod terms;

pub use engine::{Engine, compute};
pub use filter::{Filter, FilterError};
pub use panel::{Earlier, Enrolled, Figures, Panel};
pub use params::Params;
pub use terms::{FindingPeriod, Measure, Rule, Severity, Statistic, format_value};

use tallytree_proto::{Digest, Month, RegionCode, pb};

/// Version of the rule set below. A rule's own version rises when its
/// definition changes; this one rises with any of them.
pub const RULES_VERSION: u32 = 1;

/// One finding: a figure that needs checking, with everything needed to see
/// why and to recompute it.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// The rule.
    pub rule: Rule,
    /// The rule's version.
    pub version: u32,
    /// The unit whose figures need checking.
    pub region: RegionCode,
    /// The period.
    pub period: FindingPeriod,
    /// How strongly.
    pub severity: Severity,
    /// What was measured.
    pub measure: Measure,
    /// The unit's value.
    pub observed: f64,
    /// What the rule expected: the pooled rate, the median, the baseline
    /// mean, the parent's ratio, the limit.
    pub expected: f64,
    /// Which statistic.
    pub statistic: Statistic,
    /// Its value.
    pub value: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// Other units concerned (the identical siblings).
    pub related: Vec<RegionCode>,
    /// Digests of the summaries the finding was computed from, ascending.
    pub sources: Vec<Digest>,
}

impl Finding {
    /// The finding's stable id: the same for the same rule, unit, period
    /// and related units at every node that computes it, so a follow-up
    /// mark made below refers to the same finding above.
    pub fn id(&self) -> String {
        let mut text = format!(
            "{}|{}|{}|{}",
            self.rule.id(),
            self.version,
            self.region,
            period_key(&self.period)
        );
        for r in &self.related {
            text.push('|');
            text.push_str(&r.to_string());
        }
        Digest::of(text.as_bytes()).to_hex()[..16].to_owned()
    }

    /// A finding of `rule` about `region` in `period`, to be completed by
    /// the builder methods below.
    pub(crate) fn of(rule: Rule, region: RegionCode, period: FindingPeriod) -> Finding {
        Finding {
            rule,
            version: rule.version(),
            region,
            period,
            severity: Severity::Notice,
            measure: Measure::Registered,
            observed: 0.0,
            expected: 0.0,
            statistic: Statistic::Count,
            value: 0.0,
            threshold: 0.0,
            related: Vec::new(),
            sources: Vec::new(),
        }
    }

    /// What was measured: the unit's value and what the rule expected.
    pub(crate) fn measured(mut self, measure: Measure, observed: f64, expected: f64) -> Finding {
        self.measure = measure;
        self.observed = observed;
        self.expected = expected;
        self
    }

    /// The statistic, its value and the threshold it crossed.
    pub(crate) fn tested(mut self, statistic: Statistic, value: f64, threshold: f64) -> Finding {
        self.statistic = statistic;
        self.value = value;
        self.threshold = threshold;
        self
    }

    /// A count compared with a limit: the statistic is the observed value.
    pub(crate) fn counted(self, measure: Measure, observed: f64, limit: f64) -> Finding {
        self.measured(measure, observed, limit)
            .tested(Statistic::Count, observed, limit)
    }

    /// The severity.
    pub(crate) fn severity(mut self, severity: Severity) -> Finding {
        self.severity = severity;
        self
    }

    /// The summaries it was computed from (kept ascending, once each).
    pub(crate) fn sourced(mut self, sources: impl IntoIterator<Item = Digest>) -> Finding {
        self.sources = sources.into_iter().collect();
        self.sources.sort();
        self.sources.dedup();
        self
    }

    /// The other units concerned.
    pub(crate) fn with_related(mut self, related: Vec<RegionCode>) -> Finding {
        self.related = related;
        self
    }

    /// The wire form, with the unit's name and its path from the answering
    /// node.
    pub fn to_pb(&self, name: &str, path: &str) -> pb::Finding {
        pb::Finding {
            id: self.id(),
            rule: self.rule.id().to_owned(),
            rule_version: self.version,
            label: self.rule.label().to_owned(),
            region: self.region.to_string(),
            name: name.to_owned(),
            path: path.to_owned(),
            period: self.period.to_string(),
            severity: self.severity.id().to_owned(),
            measure: self.measure.id().to_owned(),
            observed: self.observed,
            expected: self.expected,
            statistic: self.statistic.id().to_owned(),
            value: self.value,
            threshold: self.threshold,
            related: self.related.iter().map(ToString::to_string).collect(),
            sources: self.sources.iter().map(Digest::to_hex).collect(),
        }
    }

    /// The order findings are listed in: region, period, rule.
    pub fn sort_key(&self) -> (RegionCode, Month, Rule, Vec<RegionCode>) {
        (
            self.region,
            self.period.start(),
            self.rule,
            self.related.clone(),
        )
    }
}

/// The period as the id hashes it: its kind and first month, so a flat
/// line that grows keeps its id.
fn period_key(period: &FindingPeriod) -> String {
    match period {
        FindingPeriod::Month(m) => format!("M{m}"),
        FindingPeriod::Months(a, _) => format!("R{a}"),
        FindingPeriod::Year(y) => format!("Y{y}"),
    }
}
