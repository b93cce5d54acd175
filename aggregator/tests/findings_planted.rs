//! A synthetic district with one planted problem of every rule: each is
//! found once, at the planted unit and period, and the rest of the district
//! is flagged no more often than the thresholds imply. The incremental
//! engine finds exactly what the full computation finds.

mod findings_support;

use std::collections::BTreeSet;

use findings_support::{Rng, *};
use proptest::prelude::*;
use tallytree_aggregator::findings::{Engine, Finding, FindingPeriod, Params, Rule, compute};
use tallytree_proto::RegionCode;

/// What a planted problem should be found as.
type Expected = (Rule, RegionCode, FindingPeriod, Vec<RegionCode>);

fn m(text: &str) -> FindingPeriod {
    FindingPeriod::Month(month(text))
}

/// The district of `seed` with every problem planted, and what each should
/// be found as.
fn planted(seed: u64) -> (Vec<Row>, Vec<Expected>) {
    let mut reports = generate(seed);
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut expected = Vec::new();
    let mut plant = |rule, region, period, related| expected.push((rule, region, period, related));

    // A village that never reported June.
    reports.remove(&(village(1, 3), month("2026-06")));
    plant(Rule::Missing, village(1, 3), m("2026-06"), vec![]);

    // A village that reported March 40 days after the month's end.
    reports
        .get_mut(&(village(1, 4), month("2026-03")))
        .expect("synthetic data")
        .signed_day = 40;
    plant(Rule::Late, village(1, 4), m("2026-03"), vec![]);

    // February on time, then three more cases registered in a revision
    // signed 50 days after the month's end.
    {
        let r = reports
            .get_mut(&(village(2, 1), month("2026-02")))
            .expect("synthetic data");
        r.earlier.push((1, r.signed_day, r.tally));
        add_cases(&mut r.tally, 3);
        r.revision = 2;
        r.signed_day = 50;
    }
    plant(Rule::RevisedAfterClose, village(2, 1), m("2026-02"), vec![]);

    // April signed twelve times, all before the deadline.
    {
        let r = reports
            .get_mut(&(village(2, 2), month("2026-04")))
            .expect("synthetic data");
        r.earlier.push((1, 1, r.tally));
        r.revision = 12;
        r.signed_day = 9;
    }
    plant(Rule::ManyRevisions, village(2, 2), m("2026-04"), vec![]);

    // Every case of street 3 resolved in May, where the others resolve 90 %.
    for v in 1..=VILLAGES {
        let r = reports
            .get_mut(&(village(3, v), month("2026-05")))
            .expect("synthetic data");
        for c in r.tally.cases.iter_mut() {
            c.resolved += c.escalated + c.in_progress;
            c.resolved_on_time = c.resolved_on_time.min(c.resolved);
            c.escalated = 0;
            c.in_progress = 0;
        }
    }
    plant(Rule::TooGoodResolution, street(3), m("2026-05"), vec![]);

    // Every resolved case of street 4 resolved on time in August (85 %).
    for v in 1..=VILLAGES {
        let r = reports
            .get_mut(&(village(4, v), month("2026-08")))
            .expect("synthetic data");
        for c in r.tally.cases.iter_mut() {
            c.resolved_on_time = c.resolved;
        }
    }
    plant(Rule::TooGoodOnTime, street(4), m("2026-08"), vec![]);

    // Two villages of street 5 with the very same figures in September.
    let mut copied = reports[&(village(5, 1), month("2026-09"))].tally;
    let short = 10u64.saturating_sub(copied.case_totals().registered);
    add_cases(&mut copied, short);
    reports
        .get_mut(&(village(5, 1), month("2026-09")))
        .expect("synthetic data")
        .tally = copied;
    reports
        .get_mut(&(village(5, 2), month("2026-09")))
        .expect("synthetic data")
        .tally = copied;
    plant(
        Rule::IdenticalSiblings,
        village(5, 1),
        m("2026-09"),
        vec![village(5, 2)],
    );

    // 35 more cases than usual in October 2025 (one earlier year: the
    // modified z-score), 30 more in July 2026 (two: the seasonal test).
    add_cases(
        &mut reports
            .get_mut(&(village(1, 5), month("2025-10")))
            .expect("synthetic data")
            .tally,
        35,
    );
    plant(Rule::Outlier, village(1, 5), m("2025-10"), vec![]);
    add_cases(
        &mut reports
            .get_mut(&(village(2, 5), month("2026-07")))
            .expect("synthetic data")
            .tally,
        30,
    );
    plant(Rule::Outlier, village(2, 5), m("2026-07"), vec![]);

    // Ten of a month's usual cases escalated, in a village that
    // escalates 3 %.
    escalate(
        &mut reports
            .get_mut(&(village(3, 5), month("2026-10")))
            .expect("synthetic data")
            .tally,
        12,
    );
    plant(Rule::EscalationSpike, village(3, 5), m("2026-10"), vec![]);

    // Ten tasks, every one overdue.
    reports
        .get_mut(&(village(4, 5), month("2026-11")))
        .expect("synthetic data")
        .tally
        .tasks = tallytree_aggregator::TaskCounts {
        assigned: 10,
        completed: 0,
        in_progress: 10,
        overdue: 10,
    };
    plant(Rule::OverdueSpike, village(4, 5), m("2026-11"), vec![]);

    // The same figures January to May 2026.
    let mut january = reports[&(village(5, 3), month("2026-01"))].tally;
    let short = 5u64.saturating_sub(january.case_totals().registered);
    add_cases(&mut january, short);
    for text in ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05"] {
        reports
            .get_mut(&(village(5, 3), month(text)))
            .expect("synthetic data")
            .tally = january;
    }
    plant(
        Rule::Flatline,
        village(5, 3),
        FindingPeriod::Months(month("2026-01"), month("2026-05")),
        vec![],
    );

    // A village whose 2026 is steadily 60 % above its earlier years, with
    // no month far from its usual: only the year's consistency shows it.
    for mo in months().filter(|mo| mo.year() == 2026) {
        let n = (20.0 * season(mo) * 1.6).round() as u64;
        reports
            .get_mut(&(village(5, 4), mo))
            .expect("synthetic data")
            .tally = village_tally(&mut rng, n, 0.9, 0.85);
    }
    for mo in months().filter(|mo| mo.year() < 2026) {
        let n = rng.poisson(20.0 * season(mo));
        reports
            .get_mut(&(village(5, 4), mo))
            .expect("synthetic data")
            .tally = village_tally(&mut rng, n, 0.9, 0.85);
    }
    plant(
        Rule::Consistency,
        village(5, 4),
        FindingPeriod::Year(2026),
        vec![],
    );

    (roll_up(&reports), expected)
}

fn key(f: &Finding) -> Expected {
    (f.rule, f.region, f.period, f.related.clone())
}

/// After the last month's deadline.
fn as_of() -> i64 {
    Params::default().deadline_ms(month("2026-12")) + 86_400_000
}

#[test]
fn every_planted_problem_is_found_once_and_little_else() {
    let mut unplanted_total = 0;
    let mut evaluations = 0;
    for seed in [1u64, 2, 3, 4, 5] {
        let (rows, expected) = planted(seed);
        let panel = panel(&rows);
        let findings = compute(&panel, &Params::default(), as_of());
        for want in &expected {
            let found: Vec<&Finding> = findings.iter().filter(|f| key(f) == *want).collect();
            assert_eq!(
                found.len(),
                1,
                "seed {seed}: {want:?} found {} times",
                found.len()
            );
            let f = found[0];
            assert!(!f.sources.is_empty() && f.version == 1);
        }
        let expected: BTreeSet<Expected> = expected.into_iter().collect();
        let unplanted: Vec<&Finding> = findings
            .iter()
            .filter(|f| !expected.contains(&key(f)))
            .collect();
        for f in &unplanted {
            eprintln!(
                "seed {seed}: unplanted {} {} {} observed {:.3} expected {:.3} {} {:.3e} (threshold {})",
                f.rule,
                f.region,
                f.period,
                f.observed,
                f.expected,
                f.statistic.id(),
                f.value,
                f.threshold
            );
        }
        unplanted_total += unplanted.len();
        // Tests a unit-month meets: outlier, two spikes, two proportions.
        evaluations += rows.len() * 5;
    }
    // Each test flags an honest figure with probability about 0.001;
    // allow twice that.
    let limit = (evaluations as f64 * 0.002).ceil() as usize;
    assert!(
        unplanted_total <= limit,
        "{unplanted_total} unplanted findings in {evaluations} tests (limit {limit})"
    );
}

#[test]
fn findings_wait_for_the_deadline_to_call_a_report_missing() {
    let (rows, _) = planted(1);
    let panel = panel(&rows);
    let params = Params::default();
    let june = month("2026-06");
    let missing = |as_of: i64| {
        compute(&panel, &params, as_of)
            .into_iter()
            .filter(|f| f.rule == Rule::Missing && f.period == FindingPeriod::Month(june))
            .count()
    };
    assert_eq!(missing(params.deadline_ms(june) - 1), 0);
    assert_eq!(missing(params.deadline_ms(june)), 1);
}

#[test]
fn ids_are_stable_and_distinct() {
    let (rows, _) = planted(2);
    let findings = compute(&panel(&rows), &Params::default(), as_of());
    let ids: BTreeSet<String> = findings.iter().map(Finding::id).collect();
    assert_eq!(ids.len(), findings.len());
    let again = compute(&panel(&rows), &Params::default(), as_of());
    assert_eq!(findings, again);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Summaries arriving in any order, some months revised later, leave
    /// the engine with exactly the findings of the full computation.
    #[test]
    fn the_engine_equals_the_full_computation(seed in 0u64..1000, order in any::<u64>(), revise in 0usize..40) {
        let (rows, _) = planted(seed);
        let mut shuffled = rows.clone();
        let mut rng = Rng::new(order);
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, rng.below(i as u64 + 1) as usize);
        }
        // Some months arrive first with other figures, later as planted.
        let (base, _) = planted(seed + 1);
        let mut engine = Engine::new(district(), Params::default());
        for (region, enrolled) in enrolments() {
            engine.enrol(region, enrolled);
        }
        let present: BTreeSet<_> = rows.iter().map(|(r, _, mo, _)| (*r, *mo)).collect();
        let early = base.iter().filter(|(r, _, mo, _)| present.contains(&(*r, *mo)));
        for (region, name, mo, figures) in early.take(revise * 40) {
            engine.insert(*region, name, *mo, figures.clone());
        }
        for (i, (region, name, mo, figures)) in shuffled.iter().enumerate() {
            engine.insert(*region, name, *mo, figures.clone());
            if i % 97 == 0 {
                engine.refresh();
            }
        }
        engine.refresh();
        let want = compute(&panel(&rows), &Params::default(), as_of());
        prop_assert_eq!(engine.findings(as_of()), want);
    }
}
