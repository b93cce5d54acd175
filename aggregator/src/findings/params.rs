//! The rules' thresholds. The defaults are docs/FINDINGS.md's; a node may
//! set others under `[findings]`, and then states them with its findings so
//! an auditor recomputes with the same ones.

use tallytree_proto::Month;

/// Milliseconds in a day.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// Thresholds and windows of every rule.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Days after a month's end within which its report is on time
    /// (DHIS2's timely days).
    pub timely_days: u32,
    /// The units' time zone, minutes east of UTC (China: 480).
    pub utc_offset_minutes: i32,
    /// A month signed this many times or more is flagged.
    pub many_revisions: u64,
    /// One-sided tail probability below which a proportion is too good
    /// (0.001: the upper 99.8 % funnel limit).
    pub funnel_p: f64,
    /// Cases (the proportion's denominator) a unit needs for the funnel.
    pub funnel_min_cases: u64,
    /// Siblings with cases, besides the unit, the funnel needs.
    pub funnel_min_siblings: usize,
    /// Modified z-score above which registered cases are an outlier
    /// (Iglewicz and Hoaglin: 3.5).
    pub outlier_z: f64,
    /// Prior months the modified z-score needs.
    pub outlier_min_history: usize,
    /// Prior months it looks at, at most.
    pub outlier_window: u32,
    /// Earlier years (same month ± 1) the seasonal test needs; with fewer,
    /// the modified z-score is used.
    pub seasonal_min_years: u32,
    /// Earlier years the seasonal test looks at, at most.
    pub seasonal_max_years: u32,
    /// Tail probability below which a count is unusual (seasonal test,
    /// escalation and overdue spikes).
    pub count_p: f64,
    /// Least difference, in cases or tasks, between a count and what its
    /// history expects, for a count rule to flag it: village counts are
    /// small, and a step of one or two is no news.
    pub min_change: u64,
    /// Prior months the escalation and overdue rates are taken over.
    pub spike_window: u32,
    /// Prior months with reports the spike rules need.
    pub spike_min_history: usize,
    /// Tolerance of the consistency over time (WHO: 33 %).
    pub consistency_tolerance: f64,
    /// Cases a year the unit's earlier years need on average: a ratio of
    /// two years of 200 cases varies by about 10 % by chance alone, so the
    /// 33 % tolerance is then beyond three standard deviations.
    pub consistency_min_cases: f64,
    /// Earlier years the consistency compares with, at most (WHO: 3).
    pub consistency_years: u32,
    /// Months in a row with the same figures that make a flat line.
    pub flatline_months: u32,
    /// Cases registered a month below which a flat line is not flagged.
    pub flatline_min_cases: u64,
    /// Cases registered below which identical siblings are not flagged.
    pub identical_min_cases: u64,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            timely_days: 15,
            utc_offset_minutes: 8 * 60,
            many_revisions: 10,
            funnel_p: 0.001,
            funnel_min_cases: 20,
            funnel_min_siblings: 3,
            outlier_z: 3.5,
            outlier_min_history: 12,
            outlier_window: 36,
            seasonal_min_years: 2,
            seasonal_max_years: 5,
            count_p: 0.001,
            min_change: 5,
            spike_window: 12,
            spike_min_history: 6,
            consistency_tolerance: 0.33,
            consistency_min_cases: 200.0,
            consistency_years: 3,
            flatline_months: 4,
            flatline_min_cases: 5,
            identical_min_cases: 10,
        }
    }
}

impl Params {
    /// The end of `month` (the first instant of the next one) in the units'
    /// time zone, in Unix milliseconds.
    pub fn month_end_ms(&self, month: Month) -> i64 {
        let midnight = month
            .next()
            .first_day()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
            .timestamp_millis();
        midnight - i64::from(self.utc_offset_minutes) * 60_000
    }

    /// The deadline of `month`'s report: its end plus the timely days.
    pub fn deadline_ms(&self, month: Month) -> i64 {
        self.month_end_ms(month) + i64::from(self.timely_days) * DAY_MS
    }
}
