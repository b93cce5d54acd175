//! Findings at a province's scale: a Liaoning-sized subtree (14 cities × 7
//! districts × 14 streets × 12 villages, 17,949 units) over 24 months.
//! Targets: every finding computed in under 2 s; the engine's update after
//! one village's new revision (and its ancestors' re-signed totals) in
//! under 50 ms.
//!
//! `cargo bench -p tallytree-aggregator --bench findings`

use std::{hint::black_box, time::Instant};

#[path = "../tests/findings_support/mod.rs"]
mod support;

use criterion::Criterion;
use support::Rng;
use tallytree_aggregator::{
    ChildEntry, SummaryView, Tally,
    findings::{Engine, Enrolled, Figures, Panel, Params, compute},
};
use tallytree_proto::{Digest, Month, RegionCode};

const PROVINCE: u64 = 210_000_000_000;
const CITIES: u64 = 14;
const DISTRICTS: u64 = 7;
const STREETS: u64 = 14;
const VILLAGES: u64 = 12;
const MONTHS: u32 = 24;

fn code(v: u64) -> RegionCode {
    RegionCode::from_u64(v).expect("valid code")
}

/// A village's tally for a month, as the findings tests draw them: Poisson
/// counts about the village's own rate (8 to 30 cases a month) with a
/// seasonal swing, binomial outcomes.
fn village_tally(region: RegionCode, month: Month) -> Tally {
    let mut rate = Rng::new(region.as_u64());
    let lambda = support::base_rate(&mut rate);
    let mut rng = Rng::new(region.as_u64() ^ u64::from(month.index()) << 40);
    let n = rng.poisson(lambda * support::season(month));
    support::village_tally(&mut rng, n, 0.9, 0.85)
}

fn months() -> impl Iterator<Item = Month> {
    let first = Month::new(2025, 1).expect("month").index();
    (first..first + MONTHS).map(|i| Month::from_index(i).expect("month"))
}

/// A signed summary's figures.
fn figures(
    region: RegionCode,
    month: Month,
    revision: u64,
    local: Tally,
    total: Tally,
    children: &[RegionCode],
) -> Figures {
    let params = Params::default();
    let view = SummaryView {
        region,
        name: String::new(),
        parent: region.parent(),
        period: month,
        revision,
        issued_at_ms: params.month_end_ms(month) + 5 * 86_400_000,
        local,
        total,
        children: children
            .iter()
            .map(|&c| ChildEntry {
                region: c,
                revision: 1,
                digest: Digest([0; 32]),
            })
            .collect(),
        children_expected: children.len() as u32,
    };
    let digest = Digest::of(format!("{region}{month}{revision}").as_bytes());
    Figures::of(&view, digest)
}

/// One unit of the tree with its children.
struct Node {
    region: RegionCode,
    children: Vec<Node>,
}

fn tree() -> Node {
    let mut cities = Vec::new();
    for c in 1..=CITIES {
        let city = PROVINCE + c * 100_000_000;
        let mut districts = Vec::new();
        for d in 1..=DISTRICTS {
            let district = city + d * 1_000_000;
            let mut streets = Vec::new();
            for s in 1..=STREETS {
                let street = district + s * 1000;
                let villages = (1..=VILLAGES)
                    .map(|v| Node {
                        region: code(street + 200 + v),
                        children: Vec::new(),
                    })
                    .collect();
                streets.push(Node {
                    region: code(street),
                    children: villages,
                });
            }
            districts.push(Node {
                region: code(district),
                children: streets,
            });
        }
        cities.push(Node {
            region: code(city),
            children: districts,
        });
    }
    Node {
        region: code(PROVINCE),
        children: cities,
    }
}

/// Rolls up `node` for `month`, inserting every unit's figures; returns
/// its total.
fn roll_up(node: &Node, month: Month, out: &mut Vec<(RegionCode, Month, Figures)>) -> Tally {
    if node.children.is_empty() {
        let tally = village_tally(node.region, month);
        out.push((
            node.region,
            month,
            figures(node.region, month, 1, tally, tally, &[]),
        ));
        return tally;
    }
    let mut total = Tally::default();
    for child in &node.children {
        total = total
            .checked_add(&roll_up(child, month, out))
            .expect("no overflow");
    }
    let children: Vec<RegionCode> = node.children.iter().map(|c| c.region).collect();
    out.push((
        node.region,
        month,
        figures(node.region, month, 1, Tally::default(), total, &children),
    ));
    total
}

fn enrolments(node: &Node, out: &mut Vec<(RegionCode, Enrolled)>) {
    for child in &node.children {
        out.push((
            child.region,
            Enrolled {
                parent: node.region,
                since_ms: 0,
            },
        ));
        enrolments(child, out);
    }
}

fn bench(c: &mut Criterion) {
    let tree = tree();
    let mut rows = Vec::new();
    for month in months() {
        roll_up(&tree, month, &mut rows);
    }
    let mut enrolled = Vec::new();
    enrolments(&tree, &mut enrolled);
    let mut panel = Panel::new(tree.region);
    for (region, e) in &enrolled {
        panel.enrol(*region, *e);
    }
    for (region, month, f) in &rows {
        panel.insert(*region, "", *month, f.clone());
    }
    let units = panel.units.len();
    let params = Params::default();
    let as_of = params.deadline_ms(months().last().expect("months")) + 1;
    let started = Instant::now();
    let findings = compute(&panel, &params, as_of);
    eprintln!(
        "{units} units × {MONTHS} months: {} findings, computed in {:.2?}",
        findings.len(),
        started.elapsed()
    );
    let mut by_rule = std::collections::BTreeMap::new();
    for f in &findings {
        *by_rule.entry(f.rule.id()).or_insert(0) += 1;
    }
    eprintln!("by rule: {by_rule:?}");

    let mut group = c.benchmark_group("findings");
    group.sample_size(10);
    group.bench_function("compute_province_24_months", |b| {
        b.iter(|| compute(black_box(&panel), &params, as_of))
    });

    // The engine, loaded; then one village's last month revised, with the
    // street, district, city and province totals that count it.
    let mut engine = Engine::new(tree.region, params.clone());
    for (region, e) in &enrolled {
        engine.enrol(*region, *e);
    }
    for (region, month, f) in &rows {
        engine.insert(*region, "", *month, f.clone());
    }
    engine.refresh();
    let month = months().last().expect("months");
    let village = &tree.children[3].children[2].children[5].children[7];
    let path: Vec<RegionCode> = village.region.ancestry().collect();
    let mut revision = 1;
    group.bench_function("update_after_one_village_revision", |b| {
        b.iter(|| {
            revision += 1;
            for &unit in &path {
                let mut f = panel.figures(unit, month).expect("figures").clone();
                f.revision = revision;
                f.digest = Digest::of(format!("{unit}{revision}").as_bytes());
                // One more case registered and resolved, all the way up.
                f.total.registered += revision;
                f.total.resolved += revision;
                if unit == village.region {
                    f.local = f.total;
                }
                engine.insert(unit, "", month, f);
            }
            engine.refresh()
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
