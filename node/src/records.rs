//! The rules a record must meet before the node stores it. Each broken rule
//! is a [`Violation`] that names the field, the value and the rule:
//! "closed_on (2026-02-30): not a date (YYYY-MM-DD)".

use std::fmt;

use chrono::{Days, NaiveDate};
use tallytree_aggregator::{
    CaseCounts, CaseRecord, CaseState, Tally, TallyError, TaskCounts, TaskRecord, TaskState,
};
use tallytree_proto::{Category, Month, PeriodError, pb};

/// Longest record id, in bytes.
pub const MAX_ID_BYTES: usize = 64;
/// Longest task title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// Intake settings the rules depend on.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// Today at the unit (its time zone).
    pub today: NaiveDate,
    /// Handling period given to a case recorded without a deadline.
    pub default_deadline_days: u32,
}

/// The name of a case state as the protocol spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateName(&'static str);

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl From<CaseState> for StateName {
    fn from(s: CaseState) -> StateName {
        StateName(match s {
            CaseState::InProgress => "in_progress",
            CaseState::Resolved => "resolved",
            CaseState::Escalated => "escalated",
        })
    }
}

/// A rule a record breaks, naming the field and the rule. Messages are what
/// the caller reads in a refusal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A required field is empty.
    #[error("{field}: required")]
    Required {
        /// The field.
        field: &'static str,
    },
    /// An id longer than [`MAX_ID_BYTES`].
    #[error("{field} ({value}): longer than {MAX_ID_BYTES} bytes")]
    IdTooLong {
        /// The field.
        field: &'static str,
        /// The id as sent.
        value: String,
    },
    /// An id with control characters or surrounding spaces.
    #[error("{field} ({value:?}): must not contain control characters or surrounding spaces")]
    IdCharacters {
        /// The field.
        field: &'static str,
        /// The id as sent.
        value: String,
    },
    /// Not a `YYYY-MM-DD` day that exists.
    #[error("{field} ({value}): not a date (YYYY-MM-DD)")]
    NotADate {
        /// The field.
        field: &'static str,
        /// The text as sent.
        value: String,
    },
    /// A date outside the years months can be kept for.
    #[error("{field} ({value}): outside the years 2000-2999")]
    OutsideYears {
        /// The field.
        field: &'static str,
        /// The text as sent.
        value: String,
    },
    /// A date after today at the unit.
    #[error("{field} ({date}): in the future (today is {today})")]
    InTheFuture {
        /// The field.
        field: &'static str,
        /// The date.
        date: NaiveDate,
        /// Today at the unit.
        today: NaiveDate,
    },
    /// A date before the case was registered.
    #[error("{field} ({date}): before registered_on ({registered_on})")]
    BeforeRegistration {
        /// The field.
        field: &'static str,
        /// The date.
        date: NaiveDate,
        /// The registration date.
        registered_on: NaiveDate,
    },
    /// A default deadline beyond the calendar.
    #[error("deadline: out of range")]
    DeadlineOutOfRange,
    /// A case category not on the list.
    #[error("category ({value}): unknown category (one of {})", category_codes())]
    UnknownCategory {
        /// The wire value.
        value: i32,
    },
    /// A state that is not one of `allowed`.
    #[error("state ({value}): required, one of {allowed}")]
    UnknownState {
        /// The wire value.
        value: i32,
        /// The states the record may have.
        allowed: &'static str,
    },
    /// A close date on a case still in progress.
    #[error("closed_on ({value}): must be empty while in_progress")]
    ClosedWhileInProgress {
        /// The close date as sent.
        value: String,
    },
    /// A resolved or escalated case without a close date.
    #[error("closed_on: required when state is {state}")]
    CloseDateMissing {
        /// The closed state.
        state: StateName,
    },
    /// A closed case (or completed task) sent back to in_progress.
    #[error("state (in_progress): cannot go back from {stored} to in_progress")]
    BackToInProgress {
        /// The stored state.
        stored: StateName,
    },
    /// A closed case sent with the other outcome.
    #[error("state ({sent}): the case is already {stored}; a closed case keeps its outcome")]
    OutcomeChanged {
        /// The state sent.
        sent: StateName,
        /// The stored state.
        stored: StateName,
    },
    /// A title too long or with control characters.
    #[error("title: at most {MAX_TITLE_CHARS} characters, no control characters")]
    Title,
    /// An id sent twice in one batch or import.
    #[error("id ({id}): duplicate in this batch (first on line {first_line})")]
    Duplicate {
        /// The id.
        id: String,
        /// Where it came first.
        first_line: u64,
    },
    /// A direct tally's period that is not a month.
    #[error(transparent)]
    Period(#[from] PeriodError),
    /// A direct tally for a month after the current one.
    #[error("period ({month}): in the future (current month {current})")]
    PeriodInTheFuture {
        /// The month sent.
        month: Month,
        /// The unit's current month.
        current: Month,
    },
    /// The unit's clock is outside the supported years.
    #[error("today: outside the supported years")]
    TodayOutOfRange,
    /// A direct tally with neither case nor task counts.
    #[error("cases, tasks: nothing to record")]
    NothingToRecord,
    /// A direct tally's category not on the list.
    #[error("cases[{index}].category ({value}): unknown category")]
    UnknownTallyCategory {
        /// Position in the request.
        index: usize,
        /// The wire value.
        value: i32,
    },
    /// A direct tally's category given twice.
    #[error("cases[{index}].category ({category}): repeated")]
    RepeatedCategory {
        /// Position in the request.
        index: usize,
        /// The category.
        category: Category,
    },
    /// Counts that break a tally invariant.
    #[error(transparent)]
    Tally(#[from] TallyError),
}

fn category_codes() -> String {
    Category::ALL.map(|c| c.code()).join(", ")
}

fn check_id(field: &'static str, id: &str) -> Result<(), Violation> {
    if id.is_empty() {
        return Err(Violation::Required { field });
    }
    if id.len() > MAX_ID_BYTES {
        return Err(Violation::IdTooLong {
            field,
            value: id.to_owned(),
        });
    }
    if id.trim() != id || id.chars().any(char::is_control) {
        return Err(Violation::IdCharacters {
            field,
            value: id.to_owned(),
        });
    }
    Ok(())
}

/// Parses `YYYY-MM-DD`, refusing days that do not exist. Hand-rolled: bulk
/// imports parse three dates a row, and chrono's format parser cost more
/// than the rest of the row's checks.
pub fn parse_date(field: &'static str, s: &str) -> Result<NaiveDate, Violation> {
    let not_a_date = || Violation::NotADate {
        field,
        value: s.to_owned(),
    };
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(not_a_date());
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let (Some(year), Some(month), Some(day)) = (number(&b[..4]), number(&b[5..7]), number(&b[8..]))
    else {
        return Err(not_a_date());
    };
    // Four digits: the year fits an i32.
    let date = NaiveDate::from_ymd_opt(year as i32, month, day).ok_or_else(not_a_date)?;
    if Month::of(date).is_none() {
        return Err(Violation::OutsideYears {
            field,
            value: s.to_owned(),
        });
    }
    Ok(date)
}

fn not_future(field: &'static str, date: NaiveDate, today: NaiveDate) -> Result<(), Violation> {
    if date > today {
        return Err(Violation::InTheFuture { field, date, today });
    }
    Ok(())
}

/// Checks a case as sent and returns its id and record.
pub fn parse_case(c: &pb::Case, rules: &Rules) -> Result<(String, CaseRecord), Violation> {
    Ok((c.id.clone(), case_record(c, rules)?))
}

/// Checks a case as sent and returns its record (the id is `c.id`).
pub fn case_record(c: &pb::Case, rules: &Rules) -> Result<CaseRecord, Violation> {
    check_id("id", &c.id)?;
    let category =
        Category::from_pb(c.category).ok_or(Violation::UnknownCategory { value: c.category })?;
    let registered_on = parse_date("registered_on", &c.registered_on)?;
    not_future("registered_on", registered_on, rules.today)?;
    let state = match pb::CaseState::try_from(c.state) {
        Ok(pb::CaseState::InProgress) => CaseState::InProgress,
        Ok(pb::CaseState::Resolved) => CaseState::Resolved,
        Ok(pb::CaseState::Escalated) => CaseState::Escalated,
        _ => {
            return Err(Violation::UnknownState {
                value: c.state,
                allowed: "in_progress, resolved, escalated",
            });
        }
    };
    let closed_on = match (state, c.closed_on.is_empty()) {
        (CaseState::InProgress, true) => None,
        (CaseState::InProgress, false) => {
            return Err(Violation::ClosedWhileInProgress {
                value: c.closed_on.clone(),
            });
        }
        (s, true) => return Err(Violation::CloseDateMissing { state: s.into() }),
        (_, false) => {
            let d = parse_date("closed_on", &c.closed_on)?;
            not_future("closed_on", d, rules.today)?;
            if d < registered_on {
                return Err(Violation::BeforeRegistration {
                    field: "closed_on",
                    date: d,
                    registered_on,
                });
            }
            Some(d)
        }
    };
    let deadline = if c.deadline.is_empty() {
        registered_on
            .checked_add_days(Days::new(u64::from(rules.default_deadline_days)))
            .ok_or(Violation::DeadlineOutOfRange)?
    } else {
        let d = parse_date("deadline", &c.deadline)?;
        if d < registered_on {
            return Err(Violation::BeforeRegistration {
                field: "deadline",
                date: d,
                registered_on,
            });
        }
        d
    };
    Ok(CaseRecord {
        category,
        registered_on,
        state,
        closed_on,
        deadline,
    })
}

/// Checks that a case may move from `old` to `new`: a closed case never goes
/// back to in_progress and never changes how it was closed.
pub fn check_case_change(old: &CaseRecord, new: &CaseRecord) -> Result<(), Violation> {
    match (old.state, new.state) {
        (a, b) if a == b => Ok(()),
        (CaseState::InProgress, _) => Ok(()),
        (a, CaseState::InProgress) => Err(Violation::BackToInProgress { stored: a.into() }),
        (a, b) => Err(Violation::OutcomeChanged {
            sent: b.into(),
            stored: a.into(),
        }),
    }
}

/// Checks a task as sent and returns its id, title and record.
pub fn parse_task(t: &pb::Task) -> Result<(String, String, TaskRecord), Violation> {
    check_id("id", &t.id)?;
    let title = t.title.trim();
    if title.is_empty() {
        return Err(Violation::Required { field: "title" });
    }
    if title.chars().count() > MAX_TITLE_CHARS || title.chars().any(char::is_control) {
        return Err(Violation::Title);
    }
    let deadline = parse_date("deadline", &t.deadline)?;
    let state = match pb::TaskState::try_from(t.state) {
        Ok(pb::TaskState::InProgress) => TaskState::InProgress,
        Ok(pb::TaskState::Completed) => TaskState::Completed,
        _ => {
            return Err(Violation::UnknownState {
                value: t.state,
                allowed: "in_progress, completed",
            });
        }
    };
    Ok((
        t.id.clone(),
        title.to_owned(),
        TaskRecord { deadline, state },
    ))
}

/// Checks that a task may move from `old` to `new`: completed stays completed.
pub fn check_task_change(old: &TaskRecord, new: &TaskRecord) -> Result<(), Violation> {
    if old.state == TaskState::Completed && new.state == TaskState::InProgress {
        return Err(Violation::BackToInProgress {
            stored: StateName("completed"),
        });
    }
    Ok(())
}

/// A direct tally, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct DirectEntry {
    /// The month.
    pub month: Month,
    /// Rows to set.
    pub cases: Vec<(Category, CaseCounts)>,
    /// Task counts to set.
    pub tasks: Option<TaskCounts>,
}

/// Checks a direct tally: month valid and not in the future, categories known
/// and not repeated, every row's invariants.
pub fn parse_direct(d: &pb::DirectTally, rules: &Rules) -> Result<DirectEntry, Violation> {
    let month = Month::parse(&d.period)?;
    let current = Month::of(rules.today).ok_or(Violation::TodayOutOfRange)?;
    if month > current {
        return Err(Violation::PeriodInTheFuture { month, current });
    }
    if d.cases.is_empty() && d.tasks.is_none() {
        return Err(Violation::NothingToRecord);
    }
    let mut cases: Vec<(Category, CaseCounts)> = Vec::with_capacity(d.cases.len());
    for (index, row) in d.cases.iter().enumerate() {
        let category = Category::from_pb(row.category).ok_or(Violation::UnknownTallyCategory {
            index,
            value: row.category,
        })?;
        if cases.iter().any(|(c, _)| *c == category) {
            return Err(Violation::RepeatedCategory { index, category });
        }
        let counts = CaseCounts::from_pb(row);
        let mut t = Tally::default();
        *t.category_mut(category) = counts;
        t.check(&format!("cases[{index}]"))?;
        cases.push((category, counts));
    }
    let tasks = d.tasks.as_ref().map(TaskCounts::from_pb);
    if let Some(t) = &tasks {
        t.check("direct")?;
    }
    Ok(DirectEntry {
        month,
        cases,
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            today: NaiveDate::from_ymd_opt(2026, 6, 15).expect("date"),
            default_deadline_days: 30,
        }
    }

    fn case(state: pb::CaseState, closed: &str) -> pb::Case {
        pb::Case {
            id: "C-1".into(),
            category: pb::Category::Neighbour as i32,
            registered_on: "2026-03-02".into(),
            state: state as i32,
            closed_on: closed.into(),
            deadline: String::new(),
        }
    }

    fn refused(c: pb::Case) -> String {
        parse_case(&c, &rules()).unwrap_err().to_string()
    }

    #[test]
    fn a_valid_case_gets_the_default_deadline() {
        let (id, r) =
            parse_case(&case(pb::CaseState::Resolved, "2026-03-20"), &rules()).expect("valid");
        assert_eq!(id, "C-1");
        assert_eq!(r.deadline.to_string(), "2026-04-01");
        assert!(r.resolved_on_time());
    }

    #[test]
    fn each_case_rule_names_field_and_rule() {
        let mut c = case(pb::CaseState::Resolved, "2026-03-01");
        assert_eq!(
            refused(c.clone()),
            "closed_on (2026-03-01): before registered_on (2026-03-02)"
        );
        c.closed_on = String::new();
        assert_eq!(
            refused(c.clone()),
            "closed_on: required when state is resolved"
        );
        c.closed_on = "2026-02-30".into();
        assert_eq!(
            refused(c.clone()),
            "closed_on (2026-02-30): not a date (YYYY-MM-DD)"
        );
        let mut c = case(pb::CaseState::InProgress, "2026-03-05");
        assert!(refused(c.clone()).starts_with("closed_on (2026-03-05): must be empty"));
        c.closed_on = String::new();
        c.registered_on = "2026-07-01".into();
        assert_eq!(
            refused(c.clone()),
            "registered_on (2026-07-01): in the future (today is 2026-06-15)"
        );
        c.registered_on = "2026-03-02".into();
        c.category = 0;
        assert!(refused(c.clone()).starts_with("category (0): unknown category"));
        c.category = 2;
        c.state = 0;
        assert!(refused(c.clone()).starts_with("state (0): required"));
        c.state = 1;
        c.id = " C-1".into();
        assert!(refused(c.clone()).starts_with("id (\" C-1\")"));
        c.id = String::new();
        assert_eq!(refused(c), "id: required");
    }

    #[test]
    fn dates_are_exactly_yyyy_mm_dd_and_exist() {
        let date = |s: &str| parse_date("deadline", s).map_err(|e| e.to_string());
        assert_eq!(
            date("2026-02-28"),
            Ok(NaiveDate::from_ymd_opt(2026, 2, 28).expect("date"))
        );
        assert_eq!(
            date("2028-02-29"),
            Ok(NaiveDate::from_ymd_opt(2028, 2, 29).expect("date"))
        );
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-04-31",
            "2026-3-5",
            "2026/03/05",
            "+202-03-05",
            "2026-03-0x",
            "2026-03-05 ",
            "",
        ] {
            assert_eq!(
                date(bad),
                Err(format!("deadline ({bad}): not a date (YYYY-MM-DD)"))
            );
        }
        assert_eq!(
            date("1999-12-31"),
            Err("deadline (1999-12-31): outside the years 2000-2999".into())
        );
    }

    #[test]
    fn closed_cases_do_not_go_back() {
        let (_, open) = parse_case(&case(pb::CaseState::InProgress, ""), &rules()).expect("ok");
        let (_, done) =
            parse_case(&case(pb::CaseState::Resolved, "2026-03-05"), &rules()).expect("ok");
        let (_, up) =
            parse_case(&case(pb::CaseState::Escalated, "2026-03-05"), &rules()).expect("ok");
        check_case_change(&open, &done).expect("forward");
        assert_eq!(
            check_case_change(&done, &open).unwrap_err().to_string(),
            "state (in_progress): cannot go back from resolved to in_progress"
        );
        assert_eq!(
            check_case_change(&done, &up).unwrap_err().to_string(),
            "state (escalated): the case is already resolved; a closed case keeps its outcome"
        );
        assert!(check_case_change(&done, &up).is_err());
        check_case_change(&done, &done).expect("same");
    }

    #[test]
    fn tasks_and_direct_tallies_are_checked() {
        let t = pb::Task {
            id: "T-1".into(),
            title: "网格员培训".into(),
            deadline: "2026-06-30".into(),
            state: pb::TaskState::Completed as i32,
        };
        let (_, _, done) = parse_task(&t).expect("valid");
        let open = TaskRecord {
            state: TaskState::InProgress,
            ..done
        };
        assert_eq!(
            check_task_change(&done, &open).unwrap_err().to_string(),
            "state (in_progress): cannot go back from completed to in_progress"
        );
        assert!(
            parse_task(&pb::Task {
                title: " ".into(),
                ..t.clone()
            })
            .is_err()
        );

        let d = pb::DirectTally {
            period: "2026-07".into(),
            cases: vec![],
            tasks: Some(pb::TaskCounts {
                assigned: 3,
                completed: 1,
                in_progress: 2,
                overdue: 0,
            }),
        };
        assert_eq!(
            parse_direct(&d, &rules()).unwrap_err().to_string(),
            "period (2026-07): in the future (current month 2026-06)"
        );
        let mut d = pb::DirectTally {
            period: "2026-05".into(),
            ..d
        };
        parse_direct(&d, &rules()).expect("valid");
        d.cases.push(pb::CaseCounts {
            category: pb::Category::Land as i32,
            registered: 5,
            resolved: 5,
            escalated: 1,
            in_progress: 0,
            resolved_on_time: 5,
        });
        let msg = parse_direct(&d, &rules()).unwrap_err().to_string();
        assert!(
            msg.contains("cases[0]: resolved (5) + escalated (1)"),
            "{msg}"
        );
    }
}
