//! Which findings a reader asked for: a region and the units below it, a
//! period, a rule, a severity.

use tallytree_proto::{PeriodRange, RegionCode};

/// A selection a reader asked for that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// A field that does not parse.
    #[error("{field} ({value}): {rule}")]
    Field {
        /// The field.
        field: &'static str,
        /// As given.
        value: String,
        /// What it must be.
        rule: String,
    },
}

use super::{Finding, Rule, Severity};

/// A selection of findings; every field left `None` selects everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Findings about this region or a unit below it.
    pub region: Option<RegionCode>,
    /// Findings whose period overlaps this one.
    pub period: Option<PeriodRange>,
    /// Findings of this rule.
    pub rule: Option<Rule>,
    /// Findings of this severity or above.
    pub severity: Option<Severity>,
}

impl Filter {
    /// The selection given as text, each field empty for "every": a
    /// region code, a period (month, quarter, year or range), a rule id, a
    /// severity id.
    pub fn parse(
        region: &str,
        period: &str,
        rule: &str,
        severity: &str,
    ) -> Result<Filter, FilterError> {
        let field = |field, value: &str, rule: String| FilterError::Field {
            field,
            value: value.to_owned(),
            rule,
        };
        let region = (!region.is_empty())
            .then(|| RegionCode::parse(region))
            .transpose()
            .map_err(|e| field("region", region, e.to_string()))?;
        let period = (!period.is_empty())
            .then(|| PeriodRange::parse(period))
            .transpose()
            .map_err(|e| field("period", period, e.to_string()))?;
        let rule = (!rule.is_empty())
            .then(|| {
                Rule::from_id(rule).ok_or_else(|| {
                    let ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
                    field(
                        "rule",
                        rule,
                        format!("unknown rule; one of {}", ids.join(", ")),
                    )
                })
            })
            .transpose()?;
        let severity = (!severity.is_empty())
            .then(|| {
                Severity::from_id(severity)
                    .ok_or_else(|| field("severity", severity, "one of notice, warning".to_owned()))
            })
            .transpose()?;
        Ok(Filter {
            region,
            period,
            rule,
            severity,
        })
    }

    /// Whether `finding` is selected.
    pub fn matches(&self, finding: &Finding) -> bool {
        self.region.is_none_or(|r| finding.region.is_within(r))
            && self
                .period
                .is_none_or(|p| finding.period.overlaps(p.from, p.to))
            && self.rule.is_none_or(|r| finding.rule == r)
            && self.severity.is_none_or(|s| finding.severity >= s)
    }
}
