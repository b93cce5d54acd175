//! The terms a finding is stated in: its rule, severity, period, measure
//! and statistic, each with the stable id files and the protocol use and
//! the names people read.

use std::fmt;

use tallytree_proto::Month;

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
