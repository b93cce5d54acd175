//! Deriving a unit's local tally from its case and task records.
//!
//! A case counts in the month it was first registered, in its current state.
//! A task counts in the month of its deadline; it is overdue when it is still
//! in progress after its deadline.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use tallytree_proto::{Category, Month};

use crate::tally::Tally;

/// Where a case stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CaseState {
    /// Being handled (在办).
    InProgress,
    /// Resolved (化解).
    Resolved,
    /// Escalated to a higher level (上交).
    Escalated,
}

/// A dispute case as the derivation needs it: no ids, no personal data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaseRecord {
    /// The dispute category.
    pub category: Category,
    /// Day of first registration; fixes the month the case counts in.
    pub registered_on: NaiveDate,
    /// Current state.
    pub state: CaseState,
    /// Day resolved or escalated.
    pub closed_on: Option<NaiveDate>,
    /// Handling deadline; a case resolved on or before it is on time.
    pub deadline: NaiveDate,
}

impl CaseRecord {
    /// The month the case counts in.
    pub fn month(&self) -> Month {
        // Dates reach a record only after intake checked their month exists.
        Month::of(self.registered_on).expect("registered_on validated at intake")
    }

    /// True for a case resolved by its deadline.
    pub fn resolved_on_time(&self) -> bool {
        self.state == CaseState::Resolved && self.closed_on.is_some_and(|d| d <= self.deadline)
    }
}

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskState {
    /// Not done yet.
    InProgress,
    /// Done.
    Completed,
}

/// A governance task as the derivation needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskRecord {
    /// Due day; fixes the month the task counts in.
    pub deadline: NaiveDate,
    /// Current state.
    pub state: TaskState,
}

impl TaskRecord {
    /// The month the task counts in.
    pub fn month(&self) -> Month {
        Month::of(self.deadline).expect("deadline validated at intake")
    }
}

impl Tally {
    /// Counts one case.
    pub fn count_case(&mut self, case: &CaseRecord) {
        let c = self.category_mut(case.category);
        c.registered += 1;
        match case.state {
            CaseState::InProgress => c.in_progress += 1,
            CaseState::Escalated => c.escalated += 1,
            CaseState::Resolved => {
                c.resolved += 1;
                if case.resolved_on_time() {
                    c.resolved_on_time += 1;
                }
            }
        }
    }

    /// Counts one task as of `today`.
    pub fn count_task(&mut self, task: &TaskRecord, today: NaiveDate) {
        let t = &mut self.tasks;
        t.assigned += 1;
        match task.state {
            TaskState::Completed => t.completed += 1,
            TaskState::InProgress => {
                t.in_progress += 1;
                if task.deadline < today {
                    t.overdue += 1;
                }
            }
        }
    }
}

/// The tally of a set of records (all of one month, or not: no filtering).
pub fn derive<'a>(
    cases: impl IntoIterator<Item = &'a CaseRecord>,
    tasks: impl IntoIterator<Item = &'a TaskRecord>,
    today: NaiveDate,
) -> Tally {
    let mut tally = Tally::default();
    for case in cases {
        tally.count_case(case);
    }
    for task in tasks {
        tally.count_task(task, today);
    }
    tally
}

/// The tally of every month the records touch.
pub fn derive_by_month<'a>(
    cases: impl IntoIterator<Item = &'a CaseRecord>,
    tasks: impl IntoIterator<Item = &'a TaskRecord>,
    today: NaiveDate,
) -> BTreeMap<Month, Tally> {
    let mut months: BTreeMap<Month, Tally> = BTreeMap::new();
    for case in cases {
        months.entry(case.month()).or_default().count_case(case);
    }
    for task in tasks {
        months
            .entry(task.month())
            .or_default()
            .count_task(task, today);
    }
    months
}

#[cfg(test)]
mod tests {
    use chrono::Days;
    use proptest::prelude::*;

    use super::*;

    fn day(offset: u64) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, 1).expect("date") + Days::new(offset)
    }

    /// One step of a case's life: the category, registration day and a list
    /// of state changes (state, days after registration).
    fn arb_history() -> impl Strategy<Value = (usize, u64, Vec<(u8, u64)>, u64)> {
        (
            0..Category::COUNT,
            0u64..300,
            prop::collection::vec((0u8..3, 0u64..60), 0..4),
            0u64..60,
        )
    }

    fn replay((cat, reg, steps, deadline): (usize, u64, Vec<(u8, u64)>, u64)) -> CaseRecord {
        let mut case = CaseRecord {
            category: Category::ALL[cat],
            registered_on: day(reg),
            state: CaseState::InProgress,
            closed_on: None,
            deadline: day(reg + deadline),
        };
        // Apply changes in order; states only move forward out of in_progress.
        for (state, after) in steps {
            if case.state != CaseState::InProgress {
                break;
            }
            match state {
                1 => {
                    case.state = CaseState::Resolved;
                    case.closed_on = Some(day(reg + after));
                }
                2 => {
                    case.state = CaseState::Escalated;
                    case.closed_on = Some(day(reg + after));
                }
                _ => {}
            }
        }
        case
    }

    proptest! {
        #[test]
        fn derived_tally_equals_a_naive_recount(
            histories in prop::collection::vec(arb_history(), 0..400),
            tasks in prop::collection::vec((0u64..300, any::<bool>()), 0..200),
            today in 0u64..330,
        ) {
            let cases: Vec<CaseRecord> = histories.into_iter().map(replay).collect();
            let tasks: Vec<TaskRecord> = tasks.into_iter().map(|(d, done)| TaskRecord {
                deadline: day(d),
                state: if done { TaskState::Completed } else { TaskState::InProgress },
            }).collect();
            let today = day(today);
            let by_month = derive_by_month(&cases, &tasks, today);
            for (month, tally) in &by_month {
                tally.check("derived").map_err(|e| TestCaseError::fail(e.to_string()))?;
                for category in Category::ALL {
                    let of = |f: &dyn Fn(&CaseRecord) -> bool| cases.iter()
                        .filter(|c| c.month() == *month && c.category == category && f(c))
                        .count() as u64;
                    let n = tally.category(category);
                    prop_assert_eq!(n.registered, of(&|_| true));
                    prop_assert_eq!(n.resolved, of(&|c| c.state == CaseState::Resolved));
                    prop_assert_eq!(n.escalated, of(&|c| c.state == CaseState::Escalated));
                    prop_assert_eq!(n.in_progress, of(&|c| c.state == CaseState::InProgress));
                    prop_assert_eq!(n.resolved_on_time, of(&|c| c.state == CaseState::Resolved
                        && c.closed_on.is_some_and(|d| d <= c.deadline)));
                }
                let due: Vec<_> = tasks.iter().filter(|t| t.month() == *month).collect();
                prop_assert_eq!(tally.tasks.assigned, due.len() as u64);
                prop_assert_eq!(tally.tasks.completed,
                    due.iter().filter(|t| t.state == TaskState::Completed).count() as u64);
                prop_assert_eq!(tally.tasks.overdue,
                    due.iter().filter(|t| t.state == TaskState::InProgress && t.deadline < today).count() as u64);
            }
            // The months partition the records: summing them gives the whole.
            let whole = derive(&cases, &tasks, today);
            let summed = by_month.values().try_fold(Tally::default(), |acc, t| acc.checked_add(t));
            prop_assert_eq!(summed, Some(whole));
        }
    }
}
