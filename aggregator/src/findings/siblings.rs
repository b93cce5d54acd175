//! Rules over the children one parent counts for a month: a proportion too
//! good against the siblings' pooled rate (funnel limits), and siblings
//! with identical case figures.

use std::collections::BTreeMap;

use tallytree_proto::{Digest, Month, RegionCode};

use super::{
    Finding, FindingPeriod, Measure, Panel, Params, Rule, Severity, Statistic,
    stats::{binomial_upper, normal_upper},
};

/// One child's proportion: `hits` of `base`.
struct Share {
    region: RegionCode,
    hits: u64,
    base: u64,
    digest: Digest,
}

/// The sibling rules for the children `parent` counts in `month`.
pub(super) fn siblings(
    panel: &Panel,
    params: &Params,
    parent: RegionCode,
    month: Month,
    out: &mut Vec<Finding>,
) {
    let Some(figures) = panel.figures(parent, month) else {
        return;
    };
    let children: Vec<(RegionCode, &super::Figures)> = figures
        .children
        .iter()
        .filter_map(|&c| Some((c, panel.figures(c, month)?)))
        .collect();
    let period = FindingPeriod::Month(month);
    let resolution: Vec<Share> = children
        .iter()
        .map(|(region, f)| Share {
            region: *region,
            hits: f.total.resolved,
            base: f.total.registered,
            digest: f.digest,
        })
        .collect();
    too_good(Rule::TooGoodResolution, &resolution, params, period, out);
    let on_time: Vec<Share> = children
        .iter()
        .map(|(region, f)| Share {
            region: *region,
            hits: f.total.resolved_on_time,
            base: f.total.resolved,
            digest: f.digest,
        })
        .collect();
    too_good(Rule::TooGoodOnTime, &on_time, params, period, out);
    identical(&children, params, period, out);
}

/// Each child with enough cases against the pooled proportion of its
/// siblings without it: the exact binomial upper tail, or, when the
/// siblings are overdispersed (φ > 1), the normal tail with the variance
/// widened by φ (Spiegelhalter 2005).
fn too_good(
    rule: Rule,
    shares: &[Share],
    params: &Params,
    period: FindingPeriod,
    out: &mut Vec<Finding>,
) {
    for (i, unit) in shares.iter().enumerate() {
        if unit.base < params.funnel_min_cases {
            continue;
        }
        let others: Vec<&Share> = shares
            .iter()
            .enumerate()
            .filter(|&(j, s)| j != i && s.base > 0)
            .map(|(_, s)| s)
            .collect();
        if others.len() < params.funnel_min_siblings {
            continue;
        }
        let hits: u64 = others.iter().map(|s| s.hits).sum();
        let base: u64 = others.iter().map(|s| s.base).sum();
        let pooled = hits as f64 / base as f64;
        let observed = unit.hits as f64 / unit.base as f64;
        if pooled >= 1.0 || observed <= pooled {
            continue;
        }
        let phi = overdispersion(&others, pooled);
        let p = if phi > 1.0 {
            let sd = (phi * pooled * (1.0 - pooled) / unit.base as f64).sqrt();
            normal_upper((observed - pooled) / sd)
        } else {
            binomial_upper(unit.hits, unit.base, pooled)
        };
        if p < params.funnel_p {
            let severity = if p < params.funnel_p / 1000.0 {
                Severity::Warning
            } else {
                Severity::Notice
            };
            out.push(
                Finding::of(rule, unit.region, period)
                    .measured(Measure::Proportion, observed, pooled)
                    .tested(Statistic::PValue, p, params.funnel_p)
                    .severity(severity)
                    .sourced(std::iter::once(unit.digest).chain(others.iter().map(|s| s.digest))),
            );
        }
    }
}

/// φ: the mean squared standardized residual of the siblings against the
/// pooled proportion, with the residuals winsorized at 10 % each side when
/// there are ten siblings or more; 1 when the pooled proportion is 0 or 1,
/// or when φ is within two standard deviations of what chance gives.
fn overdispersion(shares: &[&Share], pooled: f64) -> f64 {
    if pooled <= 0.0 || pooled >= 1.0 {
        return 1.0;
    }
    let mut z: Vec<f64> = shares
        .iter()
        .map(|s| {
            let p = s.hits as f64 / s.base as f64;
            (p - pooled) / (pooled * (1.0 - pooled) / s.base as f64).sqrt()
        })
        .collect();
    let k = z.len();
    if k >= 10 {
        let mut sorted = z.clone();
        sorted.sort_by(f64::total_cmp);
        let (lo, hi) = (sorted[k / 10], sorted[k - 1 - k / 10]);
        for v in &mut z {
            *v = v.clamp(lo, hi);
        }
    }
    let phi = z.iter().map(|v| v * v).sum::<f64>() / k as f64;
    // Only overdispersion beyond chance widens the limits: k·φ is about
    // χ² with k degrees of freedom, mean k and standard deviation √(2k).
    let kf = k as f64;
    if kf * phi > kf + 2.0 * (2.0 * kf).sqrt() {
        phi
    } else {
        1.0
    }
}

/// Children with the same case figures in every category, each with enough
/// cases: one finding per group, about its first unit, naming the others.
fn identical(
    children: &[(RegionCode, &super::Figures)],
    params: &Params,
    period: FindingPeriod,
    out: &mut Vec<Finding>,
) {
    let mut groups: BTreeMap<u64, Vec<(RegionCode, &super::Figures)>> = BTreeMap::new();
    for &(region, f) in children {
        if f.total.registered >= params.identical_min_cases {
            groups
                .entry(f.total.cases_print)
                .or_default()
                .push((region, f));
        }
    }
    for group in groups.values().filter(|g| g.len() > 1) {
        let (first, figures) = group[0];
        let size = group.len() as f64;
        out.push(
            Finding::of(Rule::IdenticalSiblings, first, period)
                .measured(
                    Measure::Registered,
                    figures.total.registered as f64,
                    figures.total.registered as f64,
                )
                .tested(Statistic::Count, size, 2.0)
                .severity(Severity::Warning)
                .with_related(group[1..].iter().map(|(r, _)| *r).collect())
                .sourced(group.iter().map(|(_, f)| f.digest)),
        );
    }
}
