//! Realistic demo figures: cases at villages and streets, the task list at
//! districts, over the ten months before the current one, reproducible from
//! a seed.

use chrono::{Datelike, Days, NaiveDate};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tallytree_proto::{Category, Level, Month, RegionCode, pb};

/// Category weights: neighbour and family disputes dominate, medical is rare.
const WEIGHTS: [u32; Category::COUNT] = [18, 22, 14, 12, 10, 12, 4, 8];

/// The records of one unit.
#[derive(Debug, Default, Clone)]
pub struct UnitData {
    /// Cases.
    pub cases: Vec<pb::Case>,
    /// Tasks.
    pub tasks: Vec<pb::Task>,
}

/// The months figures are generated for: the ten before `today`'s month.
pub fn months(today: NaiveDate) -> Vec<Month> {
    let now = Month::of(today).expect("current date is supported");
    let mut m = (0..10).fold(now, |m, _| prev(m));
    let mut out = Vec::new();
    for _ in 0..10 {
        out.push(m);
        m = m.next();
    }
    out
}

fn prev(m: Month) -> Month {
    Month::from_index(m.index() - 1).unwrap_or(m)
}

fn pick_category(rng: &mut StdRng) -> Category {
    let total: u32 = WEIGHTS.iter().sum();
    let mut x = rng.random_range(0..total);
    for (i, w) in WEIGHTS.iter().enumerate() {
        if x < *w {
            return Category::ALL[i];
        }
        x -= w;
    }
    Category::Other
}

fn day_in(rng: &mut StdRng, m: Month) -> NaiveDate {
    m.first_day() + Days::new(rng.random_range(0..28))
}

/// The village whose first four months are the same figures each month:
/// a flat line for `tallytree findings` to show.
pub const FLAT_LINE_VILLAGE: &str = "玉皇庙社区";

/// Months of [`FLAT_LINE_VILLAGE`] with the same figures.
const FLAT_MONTHS: usize = 4;

/// Generates the records of `code` (villages and streets get cases,
/// districts the task list), with closing dates never after `today`. With
/// `flat`, the first months repeat one month's cases exactly.
pub fn generate(code: RegionCode, today: NaiveDate, seed: u64, flat: bool) -> UnitData {
    let mut rng = StdRng::seed_from_u64(seed ^ code.as_u64());
    let mut data = UnitData::default();
    let per_month = match code.level() {
        Level::Village => 6..18,
        Level::Street => 1..4,
        _ => 0..0,
    };
    for (i, m) in months(today).into_iter().enumerate() {
        if per_month.is_empty() {
            break;
        }
        // Each flat month draws from the same generator state, so its
        // cases fall on the same days with the same outcomes.
        let mut repeat = StdRng::seed_from_u64(seed ^ code.as_u64() ^ 0xf1a7);
        let rng = if flat && i < FLAT_MONTHS {
            &mut repeat
        } else {
            &mut rng
        };
        for _ in 0..rng.random_range(per_month.clone()) {
            let registered = day_in(rng, m);
            let deadline = registered
                + Days::new(
                    *[7u64, 15, 30, 30, 60]
                        .get(rng.random_range(0..5))
                        .unwrap_or(&30),
                );
            let r: f64 = rng.random();
            let close = |rng: &mut StdRng, max: u64| {
                let d = registered + Days::new(rng.random_range(1..=max));
                d.min(today)
            };
            let (state, closed) = if r < 0.86 {
                (pb::CaseState::Resolved, close(rng, 40).to_string())
            } else if r < 0.92 {
                (pb::CaseState::Escalated, close(rng, 15).to_string())
            } else {
                (pb::CaseState::InProgress, String::new())
            };
            let n = data.cases.len() + 1;
            data.cases.push(pb::Case {
                id: format!("{code}-{}{:02}-{n:04}", m.year(), m.month()),
                category: pick_category(rng).to_pb() as i32,
                registered_on: registered.to_string(),
                state: state as i32,
                closed_on: closed,
                deadline: deadline.to_string(),
            });
        }
    }
    if code.level() == Level::District {
        let ms = months(today);
        for i in 1..=40 {
            let m = ms[rng.random_range(0..ms.len())];
            let due = day_in(&mut rng, m);
            let done = rng.random_bool(if due.month().is_multiple_of(3) {
                0.8
            } else {
                0.93
            });
            data.tasks.push(pb::Task {
                id: format!("{code}-T{i:03}"),
                title: format!("基层社会治理工作任务第{i}项"),
                deadline: due.to_string(),
                state: if done {
                    pb::TaskState::Completed
                } else {
                    pb::TaskState::InProgress
                } as i32,
            });
        }
    }
    data
}
