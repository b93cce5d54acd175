//! A synthetic district for the findings tests: five streets of eight
//! villages, three years of monthly reports with Poisson case counts, a
//! seasonal swing, binomial outcomes and reports signed a few days after
//! each month's end; and a list of problems to plant in it, one of each rule.

#![allow(dead_code)]

use std::collections::BTreeMap;

use tallytree_aggregator::{
    CaseCounts, ChildEntry, SummaryView, Tally, TaskCounts,
    findings::{Earlier, Enrolled, Figures, Panel, Params},
};
use tallytree_proto::{Category, Digest, Month, RegionCode};

/// SplitMix64: a small, seeded generator, so every run sees the same data.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Poisson(λ) by Knuth's product of uniforms (λ is small here).
    pub(crate) fn poisson(&mut self, lambda: f64) -> u64 {
        let limit = (-lambda).exp();
        let (mut k, mut p) = (0u64, 1.0);
        loop {
            p *= self.unit();
            if p <= limit {
                return k;
            }
            k += 1;
        }
    }

    pub(crate) fn binomial(&mut self, n: u64, p: f64) -> u64 {
        (0..n).filter(|_| self.unit() < p).count() as u64
    }
}

/// The district at the top, its streets and villages.
pub(crate) const DISTRICT: u64 = 210_282_000_000;
pub(crate) const STREETS: u64 = 5;
pub(crate) const VILLAGES: u64 = 8;

pub(crate) fn street(s: u64) -> RegionCode {
    RegionCode::from_u64(DISTRICT + s * 1000).expect("synthetic data")
}

pub(crate) fn village(s: u64, v: u64) -> RegionCode {
    RegionCode::from_u64(DISTRICT + s * 1000 + 200 + v).expect("synthetic data")
}

pub(crate) fn district() -> RegionCode {
    RegionCode::from_u64(DISTRICT).expect("synthetic data")
}

pub(crate) fn month(text: &str) -> Month {
    Month::parse(text).expect("synthetic data")
}

/// The three years reported.
pub(crate) fn months() -> impl Iterator<Item = Month> {
    let first = month("2024-01").index();
    (first..first + 36).map(|i| Month::from_index(i).expect("synthetic data"))
}

const DAY: i64 = 86_400_000;

/// A village's monthly figures before they are rolled up: its tally and
/// when (and how often) it was signed.
#[derive(Clone, Debug)]
pub(crate) struct Report {
    pub(crate) tally: Tally,
    /// Days after the month's end the counted revision was signed.
    pub(crate) signed_day: i64,
    pub(crate) revision: u64,
    /// Earlier revisions: (revision, day signed, tally).
    pub(crate) earlier: Vec<(u64, i64, Tally)>,
}

/// Cases spread over the categories with fixed weights, each resolved,
/// escalated or left in progress at the given rates.
pub(crate) fn village_tally(rng: &mut Rng, registered: u64, resolve: f64, on_time: f64) -> Tally {
    const WEIGHTS: [f64; Category::COUNT] = [0.2, 0.25, 0.1, 0.15, 0.1, 0.1, 0.05, 0.05];
    let mut tally = Tally::default();
    for _ in 0..registered {
        let r = rng.unit();
        let mut acc = 0.0;
        let mut cat = Category::COUNT - 1;
        for (i, w) in WEIGHTS.iter().enumerate() {
            acc += w;
            if r < acc {
                cat = i;
                break;
            }
        }
        let c = &mut tally.cases[cat];
        c.registered += 1;
        let outcome = rng.unit();
        if outcome < resolve {
            c.resolved += 1;
            if rng.unit() < on_time {
                c.resolved_on_time += 1;
            }
        } else if outcome < resolve + 0.03 {
            c.escalated += 1;
        } else {
            c.in_progress += 1;
        }
    }
    let assigned = rng.poisson(5.0);
    let completed = rng.binomial(assigned, 0.8);
    let in_progress = assigned - completed;
    tally.tasks = TaskCounts {
        assigned,
        completed,
        in_progress,
        overdue: rng.binomial(in_progress, 0.3),
    };
    tally
}

/// The seasonal swing of case counts.
pub(crate) fn season(m: Month) -> f64 {
    1.0 + 0.2 * (2.0 * std::f64::consts::PI * f64::from(m.month()) / 12.0).sin()
}

/// The villages' base rates: 8 to 30 cases a month.
pub(crate) fn base_rate(rng: &mut Rng) -> f64 {
    8.0 + 22.0 * rng.unit()
}

/// The fixed rates of the villages problems are planted in, so each plant
/// has the cases it needs.
fn planted_rate(s: u64, v: u64) -> Option<f64> {
    match (s, v) {
        (5, 1) | (5, 2) => Some(30.0),
        (5, 3) | (1, 5) | (2, 5) => Some(15.0),
        (3, 5) => Some(32.0),
        _ => None,
    }
}

/// Every village's reports, unplanted.
pub(crate) fn generate(seed: u64) -> BTreeMap<(RegionCode, Month), Report> {
    let mut rng = Rng::new(seed);
    let mut out = BTreeMap::new();
    for s in 1..=STREETS {
        for v in 1..=VILLAGES {
            let lambda = base_rate(&mut rng);
            let lambda = planted_rate(s, v).unwrap_or(lambda);
            for m in months() {
                let n = rng.poisson(lambda * season(m));
                let tally = village_tally(&mut rng, n, 0.9, 0.85);
                let signed_day = 1 + rng.below(10) as i64;
                out.insert(
                    (village(s, v), m),
                    Report {
                        tally,
                        signed_day,
                        revision: 1,
                        earlier: Vec::new(),
                    },
                );
            }
        }
    }
    out
}

/// Enrolments of every street and village, a month before the data.
pub(crate) fn enrolments() -> Vec<(RegionCode, Enrolled)> {
    let since = Params::default().month_end_ms(month("2023-11"));
    let mut out = Vec::new();
    for s in 1..=STREETS {
        out.push((
            street(s),
            Enrolled {
                parent: district(),
                since_ms: since,
            },
        ));
        for v in 1..=VILLAGES {
            out.push((
                village(s, v),
                Enrolled {
                    parent: street(s),
                    since_ms: since,
                },
            ));
        }
    }
    out
}

fn name(region: RegionCode) -> String {
    format!("单位{region}")
}

/// A summary view as a unit would sign it.
fn view(
    region: RegionCode,
    m: Month,
    (revision, issued_at_ms): (u64, i64),
    local: Tally,
    total: Tally,
    children: Vec<ChildEntry>,
    expected: u32,
) -> SummaryView {
    SummaryView {
        region,
        name: name(region),
        parent: region.parent(),
        period: m,
        revision,
        issued_at_ms,
        local,
        total,
        children,
        children_expected: expected,
    }
}

fn digest_of(region: RegionCode, m: Month, revision: u64, tally: &Tally) -> Digest {
    Digest::of(format!("{region} {m} {revision} {tally:?}").as_bytes())
}

fn add(a: &Tally, b: &Tally) -> Tally {
    a.checked_add(b).expect("no overflow")
}

/// One unit's counted month, as the panel takes it.
pub(crate) type Row = (RegionCode, String, Month, Figures);

/// The figures the panel holds, rolled up: villages as given (absent ones
/// missing from their street), each street signing a day after its last
/// village, the district a day after its last street. A street signs again
/// (one more revision) whenever a village signed after the street's first.
pub(crate) fn roll_up(reports: &BTreeMap<(RegionCode, Month), Report>) -> Vec<Row> {
    let params = Params::default();
    let mut out = Vec::new();
    for m in months() {
        let end = params.month_end_ms(m);
        let mut district_total = Tally::default();
        let mut district_children = Vec::new();
        let mut district_day = 0;
        for s in 1..=STREETS {
            let mut total = Tally::default();
            let mut children = Vec::new();
            // Villages sign within ten days; the street on the eleventh, and
            // again the day after the last late village.
            let mut late_day = None;
            for v in 1..=VILLAGES {
                let region = village(s, v);
                let Some(r) = reports.get(&(region, m)) else {
                    continue;
                };
                let digest = digest_of(region, m, r.revision, &r.tally);
                let signed = view(
                    region,
                    m,
                    (r.revision, end + r.signed_day * DAY),
                    r.tally,
                    r.tally,
                    Vec::new(),
                    0,
                );
                let mut figures = Figures::of(&signed, digest);
                for (rev, day, tally) in &r.earlier {
                    let earlier = view(
                        region,
                        m,
                        (*rev, end + day * DAY),
                        *tally,
                        *tally,
                        Vec::new(),
                        0,
                    );
                    figures
                        .earlier
                        .push(Earlier::of(&earlier, digest_of(region, m, *rev, tally)));
                }
                out.push((region, name(region), m, figures));
                total = add(&total, &r.tally);
                children.push(ChildEntry {
                    region,
                    revision: r.revision,
                    digest,
                });
                if r.signed_day > 10 {
                    late_day = late_day.max(Some(r.signed_day));
                }
            }
            let region = street(s);
            let (revisions, day) = match late_day {
                Some(d) => (2, d + 1),
                None => (1, 11),
            };
            let signed = view(
                region,
                m,
                (revisions, end + day * DAY),
                Tally::default(),
                total,
                children,
                VILLAGES as u32,
            );
            let digest = digest_of(region, m, revisions, &total);
            let mut figures = Figures::of(&signed, digest);
            if revisions > 1 {
                let first = view(
                    region,
                    m,
                    (1, end + 11 * DAY),
                    Tally::default(),
                    total,
                    Vec::new(),
                    VILLAGES as u32,
                );
                figures
                    .earlier
                    .push(Earlier::of(&first, digest_of(region, m, 1, &total)));
            }
            out.push((region, name(region), m, figures));
            district_total = add(&district_total, &total);
            district_children.push(ChildEntry {
                region,
                revision: revisions,
                digest,
            });
            district_day = district_day.max(day);
        }
        let region = district();
        let signed = view(
            region,
            m,
            (1, end + (district_day + 1) * DAY),
            Tally::default(),
            district_total,
            district_children.clone(),
            STREETS as u32,
        );
        out.push((
            region,
            name(region),
            m,
            Figures::of(&signed, digest_of(region, m, 1, &district_total)),
        ));
    }
    out
}

/// The panel of `rows` with every enrolment.
pub(crate) fn panel(rows: &[Row]) -> Panel {
    let mut panel = Panel::new(district());
    for (region, enrolled) in enrolments() {
        panel.enrol(region, enrolled);
    }
    for (region, name, m, figures) in rows {
        panel.insert(*region, name, *m, figures.clone());
    }
    panel
}

/// Moves `k` resolved cases of a tally to escalated (as many as there are,
/// if fewer).
pub(crate) fn escalate(tally: &mut Tally, mut k: u64) {
    for c in tally.cases.iter_mut() {
        let moved = k.min(c.resolved);
        c.resolved -= moved;
        c.resolved_on_time = c.resolved_on_time.min(c.resolved);
        c.escalated += moved;
        k -= moved;
    }
}

/// Adds `k` resolved neighbour cases.
pub(crate) fn add_cases(tally: &mut Tally, k: u64) {
    let c: &mut CaseCounts = tally.category_mut(Category::Neighbour);
    c.registered += k;
    c.resolved += k;
}
