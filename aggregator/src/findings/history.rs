//! Rules over one unit's own history: registered cases unusual for the
//! unit (a seasonal count test where earlier years exist, else the modified
//! z-score), escalation and overdue spikes against the unit's own rates,
//! flat lines (all on the unit's own records, so each case is judged where
//! it was recorded), and the WHO's consistency over time of the unit's
//! total against its parent's.

use tallytree_proto::{Digest, Month, RegionCode};

use super::{
    Figures, Finding, FindingPeriod, Measure, Panel, Params, Rule, Severity, Statistic,
    panel::Unit,
    stats::{CountModel, binomial_upper, modified_z},
};

/// The least mean a count model assumes: a history of zeros still expects
/// half a case.
const MEAN_FLOOR: f64 = 0.5;

/// The month `offset` months from `month`, if it is a valid month.
fn shift(month: Month, offset: i64) -> Option<Month> {
    let index = i64::from(month.index()) + offset;
    Month::from_index(u32::try_from(index).ok()?)
}

/// The unit's figures in the `window` months before `month`.
fn prior(unit: &Unit, month: Month, window: u32) -> impl Iterator<Item = &Figures> {
    let from = shift(month, -i64::from(window)).unwrap_or(month);
    unit.months.range(from..month).map(|(_, f)| f)
}

/// The history rules of `region` for `month`.
pub(super) fn history(
    panel: &Panel,
    params: &Params,
    region: RegionCode,
    month: Month,
    out: &mut Vec<Finding>,
) {
    let Some(unit) = panel.units.get(&region) else {
        return;
    };
    let Some(figures) = unit.months.get(&month) else {
        return;
    };
    let period = FindingPeriod::Month(month);
    outlier(unit, figures, params, region, month, out);
    let prior_months: Vec<&Figures> = prior(unit, month, params.spike_window).collect();
    if prior_months.len() >= params.spike_min_history {
        for spike in [ESCALATION, OVERDUE] {
            spike.test(figures, &prior_months, params, (region, period), out);
        }
    }
}

/// Registered cases against the unit's history: against the same month
/// (± 1) of earlier years by a Poisson or negative-binomial tail when
/// enough earlier years exist, else by the modified z-score over the prior
/// months.
fn outlier(
    unit: &Unit,
    figures: &Figures,
    params: &Params,
    region: RegionCode,
    month: Month,
    out: &mut Vec<Finding>,
) {
    let x = figures.local.registered;
    let period = FindingPeriod::Month(month);
    let mut baseline = Vec::new();
    let mut sources = vec![figures.digest];
    let mut years = 0;
    for year in 1..=i64::from(params.seasonal_max_years) {
        // A year counts when it has the same month; its neighbours join
        // the baseline where they exist.
        if shift(month, -12 * year).is_none_or(|m| !unit.months.contains_key(&m)) {
            continue;
        }
        years += 1;
        for offset in [-1, 0, 1] {
            if let Some(f) = shift(month, -12 * year + offset).and_then(|m| unit.months.get(&m)) {
                baseline.push(f.local.registered);
                sources.push(f.digest);
            }
        }
    }
    if years >= params.seasonal_min_years {
        let Some(model) = CountModel::fit(&baseline, MEAN_FLOOR) else {
            return;
        };
        let (p, far) = if (x as f64) > model.mean {
            (model.upper(x), x as f64 - model.mean)
        } else {
            (model.lower(x), model.mean - x as f64)
        };
        if p < params.count_p && far >= params.min_change as f64 {
            out.push(
                Finding::of(Rule::Outlier, region, period)
                    .measured(Measure::Registered, x as f64, model.mean)
                    .tested(Statistic::PValue, p, params.count_p)
                    .severity(severity_of_p(p, params.count_p))
                    .sourced(sources),
            );
        }
        return;
    }
    let history: Vec<&Figures> = prior(unit, month, params.outlier_window).collect();
    if history.len() < params.outlier_min_history {
        return;
    }
    let values: Vec<f64> = history.iter().map(|f| f.local.registered as f64).collect();
    let Some((z, centre, _)) = modified_z(x as f64, &values) else {
        return;
    };
    if z > params.outlier_z && (x as f64 - centre).abs() >= params.min_change as f64 {
        let severity = if z > 5.0 {
            Severity::Warning
        } else {
            Severity::Notice
        };
        out.push(
            Finding::of(Rule::Outlier, region, period)
                .measured(Measure::Registered, x as f64, centre)
                .tested(Statistic::ModifiedZ, z, params.outlier_z)
                .severity(severity)
                .sourced(std::iter::once(figures.digest).chain(history.iter().map(|f| f.digest))),
        );
    }
}

fn severity_of_p(p: f64, threshold: f64) -> Severity {
    if p < threshold / 1000.0 {
        Severity::Warning
    } else {
        Severity::Notice
    }
}

/// A rule on a count of a base (escalations of cases registered, overdue
/// of tasks assigned) against the unit's own rate.
struct RateSpike {
    rule: Rule,
    measure: Measure,
    /// The count and its base.
    read: fn(&Figures) -> (u64, u64),
}

const ESCALATION: RateSpike = RateSpike {
    rule: Rule::EscalationSpike,
    measure: Measure::Escalated,
    read: |f| (f.local.escalated, f.local.registered),
};

const OVERDUE: RateSpike = RateSpike {
    rule: Rule::OverdueSpike,
    measure: Measure::Overdue,
    read: |f| (f.local.tasks_overdue, f.local.tasks_assigned),
};

impl RateSpike {
    /// The month's count against the unit's rate over the prior months, by
    /// the binomial upper tail; the rate is (hits + ½) / (base + 1), so a
    /// history without a single hit still expects a little.
    fn test(
        &self,
        figures: &Figures,
        prior: &[&Figures],
        params: &Params,
        (region, period): (RegionCode, FindingPeriod),
        out: &mut Vec<Finding>,
    ) {
        let (x, n) = (self.read)(figures);
        if n == 0 {
            return;
        }
        let (hits, base) = prior.iter().fold((0u64, 0u64), |(h, b), f| {
            let (fh, fb) = (self.read)(f);
            (h + fh, b + fb)
        });
        let rate = (hits as f64 + 0.5) / (base as f64 + 1.0);
        let expected = n as f64 * rate;
        if (x as f64) - expected < params.min_change as f64 {
            return;
        }
        let p = binomial_upper(x, n, rate.min(1.0));
        if p < params.count_p {
            out.push(
                Finding::of(self.rule, region, period)
                    .measured(self.measure, x as f64, expected)
                    .tested(Statistic::PValue, p, params.count_p)
                    .severity(severity_of_p(p, params.count_p))
                    .sourced(std::iter::once(figures.digest).chain(prior.iter().map(|f| f.digest))),
            );
        }
    }
}

/// Runs of consecutive months with the same non-zero figures (every count
/// of the tally equal) and enough cases: one finding per run.
pub(super) fn flatlines(
    panel: &Panel,
    params: &Params,
    region: RegionCode,
    out: &mut Vec<Finding>,
) {
    let Some(unit) = panel.units.get(&region) else {
        return;
    };
    let mut run: Vec<(Month, &Figures)> = Vec::new();
    let mut flush = |run: &mut Vec<(Month, &Figures)>| {
        if run.len() >= params.flatline_months as usize {
            let months = run.len() as f64;
            out.push(
                Finding::of(
                    Rule::Flatline,
                    region,
                    FindingPeriod::Months(run[0].0, run[run.len() - 1].0),
                )
                .counted(Measure::Months, months, f64::from(params.flatline_months))
                .sourced(run.iter().map(|(_, f)| f.digest)),
            );
        }
        run.clear();
    };
    for (&month, figures) in &unit.months {
        let continues = run.last().is_some_and(|(m, f)| {
            m.next() == month && f.local.tally_print == figures.local.tally_print
        });
        if !continues {
            flush(&mut run);
        }
        if figures.local.registered >= params.flatline_min_cases {
            run.push((month, figures));
        } else {
            flush(&mut run);
        }
    }
    flush(&mut run);
}

/// A calendar year's registered cases, with the digests, if all twelve
/// months are there.
fn year_total(unit: &Unit, year: i32) -> Option<(f64, Vec<Digest>)> {
    let (first, last) = (Month::new(year, 1)?, Month::new(year, 12)?);
    let months: Vec<&Figures> = unit.months.range(first..=last).map(|(_, f)| f).collect();
    (months.len() == 12).then(|| {
        (
            months.iter().map(|f| f.total.registered as f64).sum(),
            months.iter().map(|f| f.digest).collect(),
        )
    })
}

/// The ratio of a year's cases to the mean of the up to `years` complete
/// years before it, with that mean and the digests; `None` without a
/// complete earlier year.
fn year_ratio(unit: &Unit, year: i32, years: u32) -> Option<(f64, f64, Vec<Digest>)> {
    let (current, mut sources) = year_total(unit, year)?;
    let mut earlier = Vec::new();
    for back in 1..=years as i32 {
        if let Some((total, digests)) = year_total(unit, year - back) {
            earlier.push(total);
            sources.extend(digests);
        }
    }
    if earlier.is_empty() {
        return None;
    }
    let mean = earlier.iter().sum::<f64>() / earlier.len() as f64;
    (mean > 0.0).then(|| (current / mean, mean, sources))
}

/// The WHO's consistency over time: a unit's ratio of a year's cases to
/// its earlier years', against its parent's same ratio, flagged beyond the
/// tolerance. For every complete year of the unit with a complete earlier
/// year, the parent's likewise.
pub(super) fn consistency(
    panel: &Panel,
    params: &Params,
    region: RegionCode,
    out: &mut Vec<Finding>,
) {
    let (Some(unit), Some(parent)) = (
        panel.units.get(&region),
        region.parent().and_then(|p| panel.units.get(&p)),
    ) else {
        return;
    };
    let (Some(first), Some(last)) = (unit.months.keys().next(), unit.months.keys().next_back())
    else {
        return;
    };
    for year in first.year() + 1..=last.year() {
        let Some((ratio, mean, mut sources)) = year_ratio(unit, year, params.consistency_years)
        else {
            continue;
        };
        let Some((parent_ratio, _, parent_sources)) =
            year_ratio(parent, year, params.consistency_years)
        else {
            continue;
        };
        if mean < params.consistency_min_cases || parent_ratio <= 0.0 {
            continue;
        }
        let difference = (ratio / parent_ratio - 1.0).abs();
        let far = (ratio - parent_ratio).abs() * mean;
        if difference > params.consistency_tolerance && far >= params.min_change as f64 {
            sources.extend(parent_sources);
            out.push(
                Finding::of(Rule::Consistency, region, FindingPeriod::Year(year))
                    .measured(Measure::Ratio, ratio, parent_ratio)
                    .tested(
                        Statistic::RelativeDifference,
                        difference,
                        params.consistency_tolerance,
                    )
                    .sourced(sources),
            );
        }
    }
}
