//! Reporting rules: a report missing after the deadline, a first report
//! signed late, registered counts changed after the month closed, a month
//! signed many times.

use tallytree_proto::{Month, RegionCode};

use super::{Finding, FindingPeriod, Measure, Panel, Params, Rule, Severity, params::DAY_MS};

/// Whole days from `from_ms` to `to_ms`, rounded down.
fn days_between(from_ms: i64, to_ms: i64) -> f64 {
    ((to_ms - from_ms).div_euclid(DAY_MS)) as f64
}

/// The children of `parent` expected to report for `month`: enrolled
/// before the month ended.
pub(super) fn expected_children(
    panel: &Panel,
    params: &Params,
    parent: RegionCode,
    month: Month,
) -> Vec<RegionCode> {
    let end = params.month_end_ms(month);
    panel
        .children_of(parent)
        .filter(|c| {
            panel
                .enrolled
                .get(c)
                .is_some_and(|e| e.parent == parent && e.since_ms < end)
        })
        .collect()
}

/// Missing reports as of `as_of_ms`: for every summary of a parent in the
/// panel whose month's deadline has passed, each expected child it does
/// not count.
pub(super) fn missing(panel: &Panel, params: &Params, as_of_ms: i64, out: &mut Vec<Finding>) {
    for (&parent, unit) in &panel.units {
        if !panel.children.contains_key(&parent) {
            continue;
        }
        for (&month, figures) in &unit.months {
            let deadline = params.deadline_ms(month);
            if as_of_ms < deadline {
                continue;
            }
            for child in expected_children(panel, params, parent, month) {
                if figures.children.binary_search(&child).is_err() {
                    out.push(
                        Finding::of(Rule::Missing, child, FindingPeriod::Month(month))
                            .counted(Measure::Days, days_between(deadline, as_of_ms), 0.0)
                            .severity(Severity::Warning)
                            .sourced([figures.digest]),
                    );
                }
            }
        }
    }
}

/// The timing and revision rules of `region`'s report for `month`.
pub(super) fn report(
    panel: &Panel,
    params: &Params,
    region: RegionCode,
    month: Month,
    out: &mut Vec<Finding>,
) {
    let Some(figures) = panel.figures(region, month) else {
        return;
    };
    let end = params.month_end_ms(month);
    let deadline = params.deadline_ms(month);
    let timely = f64::from(params.timely_days);
    let period = FindingPeriod::Month(month);
    let first = figures.first();
    // A unit enrolled after a month's deadline reports its backlog within
    // the timely days from its enrolment.
    let due = panel.enrolled.get(&region).map_or(deadline, |e| {
        deadline.max(e.since_ms + i64::from(params.timely_days) * DAY_MS)
    });
    if first.issued_at_ms > due {
        out.push(
            Finding::of(Rule::Late, region, period)
                .counted(Measure::Days, days_between(end, first.issued_at_ms), timely)
                .sourced([first.digest]),
        );
    }
    // The last revision signed by the deadline, if the first one was.
    let at_close = figures
        .earlier
        .iter()
        .rev()
        .find(|e| e.issued_at_ms <= deadline);
    if let Some(at_close) = at_close
        && figures.issued_at_ms > deadline
        && figures.local.registered_print != at_close.registered_print
    {
        out.push(
            Finding::of(Rule::RevisedAfterClose, region, period)
                .counted(
                    Measure::Days,
                    days_between(end, figures.issued_at_ms),
                    timely,
                )
                .sourced([at_close.digest, figures.digest]),
        );
    }
    // A parent signs again whenever a child does: only a unit that counts
    // no children revises for its own records alone.
    if figures.children.is_empty() && figures.revision >= params.many_revisions {
        out.push(
            Finding::of(Rule::ManyRevisions, region, period)
                .counted(
                    Measure::Revisions,
                    figures.revision as f64,
                    params.many_revisions as f64,
                )
                .sourced([figures.digest]),
        );
    }
}
