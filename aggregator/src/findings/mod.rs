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

pub use engine::{Engine, compute};
pub use filter::{Filter, FilterError};
pub use panel::{Earlier, Enrolled, Figures, Panel};
pub use params::Params;

use std::fmt;

use tallytree_proto::{Digest, Month, RegionCode, pb};

/// Version of the rule set below. A rule's own version rises when its
/// definition changes; this one rises with any of them.
pub const RULES_VERSION: u32 = 1;

/// A rule. Its id is stable; [`Rule::version`] rises when its definition
/// changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// An expected child's report is missing after the month's deadline.
    Missing,
    /// A month's first report was signed after the deadline.
    Late,
    /// The registered counts changed in a revision signed after the deadline.
    RevisedAfterClose,
    /// A month signed many times.
    ManyRevisions,
    /// A resolution proportion too good against the siblings' pooled rate.
    TooGoodResolution,
    /// An on-time proportion too good against the siblings' pooled rate.
    TooGoodOnTime,
    /// Siblings with identical case figures.
    IdenticalSiblings,
    /// Registered cases far from the unit's own history.
    Outlier,
    /// Escalations beyond the unit's own escalation rate.
    EscalationSpike,
    /// Overdue tasks beyond the unit's own overdue rate.
    OverdueSpike,
    /// The same non-zero figures several months in a row.
    Flatline,
    /// A year's change against earlier years unlike the parent's.
    Consistency,
}

impl Rule {
    /// Every rule, in the order they are listed.
    pub const ALL: [Rule; 12] = [
        Rule::Missing,
        Rule::Late,
        Rule::RevisedAfterClose,
        Rule::ManyRevisions,
        Rule::TooGoodResolution,
        Rule::TooGoodOnTime,
        Rule::IdenticalSiblings,
        Rule::Outlier,
        Rule::EscalationSpike,
        Rule::OverdueSpike,
        Rule::Flatline,
        Rule::Consistency,
    ];

    /// The stable id, as the CLI, the console and the protocol name it.
    pub fn id(self) -> &'static str {
        match self {
            Rule::Missing => "reporting.missing",
            Rule::Late => "reporting.late",
            Rule::RevisedAfterClose => "revisions.after_close",
            Rule::ManyRevisions => "revisions.many",
            Rule::TooGoodResolution => "siblings.too_good_resolution",
            Rule::TooGoodOnTime => "siblings.too_good_on_time",
            Rule::IdenticalSiblings => "siblings.identical",
            Rule::Outlier => "history.outlier",
            Rule::EscalationSpike => "history.escalation_spike",
            Rule::OverdueSpike => "history.overdue_spike",
            Rule::Flatline => "history.flatline",
            Rule::Consistency => "history.consistency",
        }
    }

    /// The rule with id `id`.
    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.id() == id)
    }

    /// The version of this rule's definition.
    pub fn version(self) -> u32 {
        1
    }

    /// The Chinese name.
    pub fn label(self) -> &'static str {
        match self {
            Rule::Missing => "未报",
            Rule::Late => "迟报",
            Rule::RevisedAfterClose => "截止后改动登记数",
            Rule::ManyRevisions => "反复修改",
            Rule::TooGoodResolution => "化解率异常偏高",
            Rule::TooGoodOnTime => "按期化解率异常偏高",
            Rule::IdenticalSiblings => "同级单位数据雷同",
            Rule::Outlier => "登记数异常波动",
            Rule::EscalationSpike => "上交激增",
            Rule::OverdueSpike => "任务逾期激增",
            Rule::Flatline => "连续多月数据不变",
            Rule::Consistency => "年度变化与上级不一致",
        }
    }

    /// The English name.
    pub fn label_en(self) -> &'static str {
        match self {
            Rule::Missing => "missing report",
            Rule::Late => "late report",
            Rule::RevisedAfterClose => "registered counts changed after close",
            Rule::ManyRevisions => "many revisions",
            Rule::TooGoodResolution => "resolution too good",
            Rule::TooGoodOnTime => "on-time resolution too good",
            Rule::IdenticalSiblings => "identical siblings",
            Rule::Outlier => "registered cases unusual",
            Rule::EscalationSpike => "escalation spike",
            Rule::OverdueSpike => "overdue tasks spike",
            Rule::Flatline => "flat line",
            Rule::Consistency => "inconsistent with the parent over years",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// How strongly a finding asks to be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth a look (提示).
    Notice,
    /// Check first (重点核实): far beyond the threshold.
    Warning,
}

impl Severity {
    /// The id used in filters and files.
    pub fn id(self) -> &'static str {
        match self {
            Severity::Notice => "notice",
            Severity::Warning => "warning",
        }
    }

    /// The severity with id `id`.
    pub fn from_id(id: &str) -> Option<Severity> {
        [Severity::Notice, Severity::Warning]
            .into_iter()
            .find(|s| s.id() == id)
    }

    /// The Chinese name.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Notice => "提示",
            Severity::Warning => "重点核实",
        }
    }
}

/// The period a finding concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingPeriod {
    /// One month.
    Month(Month),
    /// Consecutive months, first and last.
    Months(Month, Month),
    /// A calendar year.
    Year(i32),
}

impl FindingPeriod {
    /// Whether the period overlaps the months `first..=last`.
    pub fn overlaps(&self, first: Month, last: Month) -> bool {
        let (a, b) = self.bounds();
        a <= last && b >= first
    }

    /// The first and last month of the period.
    pub fn bounds(&self) -> (Month, Month) {
        match *self {
            FindingPeriod::Month(m) => (m, m),
            FindingPeriod::Months(a, b) => (a, b),
            FindingPeriod::Year(y) => (
                Month::new(y, 1).expect("a year of a month"),
                Month::new(y, 12).expect("a year of a month"),
            ),
        }
    }

    /// The first month, which identifies the period together with its kind.
    pub fn start(&self) -> Month {
        self.bounds().0
    }
}

impl fmt::Display for FindingPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FindingPeriod::Month(m) => write!(f, "{m}"),
            FindingPeriod::Months(a, b) => write!(f, "{a}..{b}"),
            FindingPeriod::Year(y) => write!(f, "{y}"),
        }
    }
}

/// What a finding measured, in the units of [`Finding::observed`] and
/// [`Finding::expected`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Measure {
    /// Days past the month's deadline (missing), or after the month's end
    /// (late, revised after close).
    Days,
    /// A revision number.
    Revisions,
    /// A proportion, 0 to 1.
    Proportion,
    /// Cases registered.
    Registered,
    /// Cases escalated.
    Escalated,
    /// Tasks overdue.
    Overdue,
    /// Months in a row.
    Months,
    /// A ratio of a year's cases to earlier years'.
    Ratio,
}

impl Measure {
    /// The id used in files.
    pub fn id(self) -> &'static str {
        match self {
            Measure::Days => "days",
            Measure::Revisions => "revisions",
            Measure::Proportion => "proportion",
            Measure::Registered => "registered",
            Measure::Escalated => "escalated",
            Measure::Overdue => "overdue",
            Measure::Months => "months",
            Measure::Ratio => "ratio",
        }
    }
}

/// A value as people read it, by the id of its measure or statistic:
/// proportions and relative differences in percent, p-values in scientific
/// notation, scores and ratios to two places, counts whole.
pub fn format_value(kind: &str, value: f64) -> String {
    match kind {
        "proportion" | "relative_difference" => format!("{:.1}%", value * 100.0),
        "p" => format!("{value:.2e}"),
        "modified_z" | "ratio" => format!("{value:.2}"),
        _ if value.fract() == 0.0 => format!("{value:.0}"),
        _ => format!("{value:.1}"),
    }
}

/// The statistic a rule compares with its threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Statistic {
    /// A count or a number of days, compared with a limit.
    Count,
    /// A one-sided tail probability; flagged below the threshold.
    PValue,
    /// A modified z-score; flagged above the threshold.
    ModifiedZ,
    /// |unit's ratio / parent's ratio − 1|; flagged above the threshold.
    RelativeDifference,
}

impl Statistic {
    /// The id used in files.
    pub fn id(self) -> &'static str {
        match self {
            Statistic::Count => "count",
            Statistic::PValue => "p",
            Statistic::ModifiedZ => "modified_z",
            Statistic::RelativeDifference => "relative_difference",
        }
    }
}

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
