//! The rules a record must meet before the node stores it. Each refusal
//! names the field, the value and the rule: "closed_on (2026-02-30): not a
//! date (YYYY-MM-DD)".

use chrono::{Days, NaiveDate};
use tallytree_aggregator::{
    CaseCounts, CaseRecord, CaseState, Tally, TaskCounts, TaskRecord, TaskState,
};
use tallytree_proto::{Category, Month, pb};

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

fn check_id(field: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err(format!("{field}: required"));
    }
    if id.len() > MAX_ID_BYTES {
        return Err(format!("{field} ({id}): longer than {MAX_ID_BYTES} bytes"));
    }
    if id.trim() != id || id.chars().any(char::is_control) {
        return Err(format!(
            "{field} ({id:?}): must not contain control characters or surrounding spaces"
        ));
    }
    Ok(())
}

/// Parses `YYYY-MM-DD`, refusing days that do not exist.
pub fn parse_date(field: &str, s: &str) -> Result<NaiveDate, String> {
    let ok = s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-';
    let date = ok
        .then(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| format!("{field} ({s}): not a date (YYYY-MM-DD)"))?;
    if Month::of(date).is_none() {
        return Err(format!("{field} ({s}): outside the years 2000-2999"));
    }
    Ok(date)
}

fn not_future(field: &str, date: NaiveDate, today: NaiveDate) -> Result<(), String> {
    if date > today {
        return Err(format!(
            "{field} ({date}): in the future (today is {today})"
        ));
    }
    Ok(())
}

fn case_state_name(s: CaseState) -> &'static str {
    match s {
        CaseState::InProgress => "in_progress",
        CaseState::Resolved => "resolved",
        CaseState::Escalated => "escalated",
    }
}

/// Checks a case as sent and returns its id and record.
pub fn parse_case(c: &pb::Case, rules: &Rules) -> Result<(String, CaseRecord), String> {
    check_id("id", &c.id)?;
    let category = Category::from_pb(c.category).ok_or_else(|| {
        format!(
            "category ({}): unknown category (one of {})",
            c.category,
            Category::ALL.map(|c| c.code()).join(", ")
        )
    })?;
    let registered_on = parse_date("registered_on", &c.registered_on)?;
    not_future("registered_on", registered_on, rules.today)?;
    let state = match pb::CaseState::try_from(c.state) {
        Ok(pb::CaseState::InProgress) => CaseState::InProgress,
        Ok(pb::CaseState::Resolved) => CaseState::Resolved,
        Ok(pb::CaseState::Escalated) => CaseState::Escalated,
        _ => {
            return Err(format!(
                "state ({}): required, one of in_progress, resolved, escalated",
                c.state
            ));
        }
    };
    let closed_on = match (state, c.closed_on.is_empty()) {
        (CaseState::InProgress, true) => None,
        (CaseState::InProgress, false) => {
            return Err(format!(
                "closed_on ({}): must be empty while in_progress",
                c.closed_on
            ));
        }
        (s, true) => {
            return Err(format!(
                "closed_on: required when state is {}",
                case_state_name(s)
            ));
        }
        (_, false) => {
            let d = parse_date("closed_on", &c.closed_on)?;
            not_future("closed_on", d, rules.today)?;
            if d < registered_on {
                return Err(format!(
                    "closed_on ({d}): before registered_on ({registered_on})"
                ));
            }
            Some(d)
        }
    };
    let deadline = if c.deadline.is_empty() {
        registered_on
            .checked_add_days(Days::new(u64::from(rules.default_deadline_days)))
            .ok_or_else(|| "deadline: out of range".to_owned())?
    } else {
        let d = parse_date("deadline", &c.deadline)?;
        if d < registered_on {
            return Err(format!(
                "deadline ({d}): before registered_on ({registered_on})"
            ));
        }
        d
    };
    Ok((
        c.id.clone(),
        CaseRecord {
            category,
            registered_on,
            state,
            closed_on,
            deadline,
        },
    ))
}

/// Checks that a case may move from `old` to `new`: a closed case never goes
/// back to in_progress and never changes how it was closed.
pub fn check_case_change(old: &CaseRecord, new: &CaseRecord) -> Result<(), String> {
    match (old.state, new.state) {
        (a, b) if a == b => Ok(()),
        (CaseState::InProgress, _) => Ok(()),
        (a, CaseState::InProgress) => Err(format!(
            "state (in_progress): cannot go back from {} to in_progress",
            case_state_name(a)
        )),
        (a, b) => Err(format!(
            "state ({}): the case is already {}; a closed case keeps its outcome",
            case_state_name(b),
            case_state_name(a)
        )),
    }
}

/// Checks a task as sent and returns its id, title and record.
pub fn parse_task(t: &pb::Task) -> Result<(String, String, TaskRecord), String> {
    check_id("id", &t.id)?;
    let title = t.title.trim();
    if title.is_empty() {
        return Err("title: required".into());
    }
    if title.chars().count() > MAX_TITLE_CHARS || title.chars().any(char::is_control) {
        return Err(format!(
            "title: at most {MAX_TITLE_CHARS} characters, no control characters"
        ));
    }
    let deadline = parse_date("deadline", &t.deadline)?;
    let state = match pb::TaskState::try_from(t.state) {
        Ok(pb::TaskState::InProgress) => TaskState::InProgress,
        Ok(pb::TaskState::Completed) => TaskState::Completed,
        _ => {
            return Err(format!(
                "state ({}): required, one of in_progress, completed",
                t.state
            ));
        }
    };
    Ok((
        t.id.clone(),
        title.to_owned(),
        TaskRecord { deadline, state },
    ))
}

/// Checks that a task may move from `old` to `new`: completed stays completed.
pub fn check_task_change(old: &TaskRecord, new: &TaskRecord) -> Result<(), String> {
    if old.state == TaskState::Completed && new.state == TaskState::InProgress {
        return Err("state (in_progress): cannot go back from completed to in_progress".into());
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
pub fn parse_direct(d: &pb::DirectTally, rules: &Rules) -> Result<DirectEntry, String> {
    let month = Month::parse(&d.period).map_err(|e| e.to_string())?;
    let now = Month::of(rules.today).ok_or("today: outside the supported years")?;
    if month > now {
        return Err(format!(
            "period ({month}): in the future (current month {now})"
        ));
    }
    if d.cases.is_empty() && d.tasks.is_none() {
        return Err("cases, tasks: nothing to record".into());
    }
    let mut cases: Vec<(Category, CaseCounts)> = Vec::with_capacity(d.cases.len());
    for (i, row) in d.cases.iter().enumerate() {
        let category = Category::from_pb(row.category)
            .ok_or_else(|| format!("cases[{i}].category ({}): unknown category", row.category))?;
        if cases.iter().any(|(c, _)| *c == category) {
            return Err(format!("cases[{i}].category ({category}): repeated"));
        }
        let counts = CaseCounts::from_pb(row);
        let mut t = Tally::default();
        *t.category_mut(category) = counts;
        t.check(&format!("cases[{i}]")).map_err(|e| e.to_string())?;
        cases.push((category, counts));
    }
    let tasks = d.tasks.as_ref().map(TaskCounts::from_pb);
    if let Some(t) = &tasks {
        t.check("direct").map_err(|e| e.to_string())?;
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
        parse_case(&c, &rules()).unwrap_err()
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
    fn closed_cases_do_not_go_back() {
        let (_, open) = parse_case(&case(pb::CaseState::InProgress, ""), &rules()).expect("ok");
        let (_, done) =
            parse_case(&case(pb::CaseState::Resolved, "2026-03-05"), &rules()).expect("ok");
        let (_, up) =
            parse_case(&case(pb::CaseState::Escalated, "2026-03-05"), &rules()).expect("ok");
        check_case_change(&open, &done).expect("forward");
        assert_eq!(
            check_case_change(&done, &open).unwrap_err(),
            "state (in_progress): cannot go back from resolved to in_progress"
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
        assert!(check_task_change(&done, &open).is_err());
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
        assert!(
            parse_direct(&d, &rules())
                .unwrap_err()
                .contains("in the future")
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
        let msg = parse_direct(&d, &rules()).unwrap_err();
        assert!(
            msg.contains("cases[0]: resolved (5) + escalated (1)"),
            "{msg}"
        );
    }
}
