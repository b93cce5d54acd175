//! Intake: checking and storing the unit's cases, tasks and direct tallies.
//!
//! A submission is checked row by row against the rules ([`crate::records`])
//! and against what is stored (states only move forward), then written in
//! one synced batch together with the "dirty" marks of the months it changes,
//! so a crash can never lose a change the signer has yet to sign.

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use prost::Message;
use tallytree_proto::{Month, pb};

use crate::{
    clock::Clock,
    config::IntakeConfig,
    ledger::Ledger,
    records::{self, Rules},
    store::{
        Batch, Cf, StoreError,
        layout::{self, CaseRow, DIRECT_TASKS_SLOT, TaskRow},
    },
};

/// Rows to record, each with the caller's line number.
#[derive(Debug, Default, Clone)]
pub struct Submission {
    /// Cases.
    pub cases: Vec<(u64, pb::Case)>,
    /// Tasks.
    pub tasks: Vec<(u64, pb::Task)>,
    /// Keep the valid rows when some are refused.
    pub skip_invalid: bool,
    /// Check only; store nothing.
    pub dry_run: bool,
}

impl Submission {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.cases.len() + self.tasks.len()
    }

    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What happened to a submission.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// Rows durably stored (unchanged rows included).
    pub accepted: u64,
    /// Rows refused, with line, id and reason.
    pub refused: Vec<pb::Refusal>,
    /// Months whose records changed.
    pub months_changed: BTreeSet<Month>,
}

impl Outcome {
    /// The wire form.
    pub fn to_pb(&self) -> pb::RecordResponse {
        pb::RecordResponse {
            accepted: self.accepted,
            refused: self.refused.clone(),
            months_changed: self.months_changed.iter().map(Month::to_string).collect(),
        }
    }
}

/// The intake service of one node.
#[derive(Debug, Clone)]
pub struct Intake {
    /// Where records go.
    ledger: Arc<Ledger>,
    /// For "today".
    clock: Clock,
    /// Defaults and limits.
    config: IntakeConfig,
}

impl Intake {
    /// Intake over `ledger`.
    pub fn new(ledger: Arc<Ledger>, clock: Clock, config: IntakeConfig) -> Intake {
        Intake {
            ledger,
            clock,
            config,
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &IntakeConfig {
        &self.config
    }

    fn rules(&self) -> Rules {
        Rules {
            today: self.clock.today(),
            default_deadline_days: self.config.default_deadline_days,
        }
    }

    /// Checks and stores a submission. All or nothing unless `skip_invalid`.
    /// Blocking: call from a blocking thread.
    pub fn record(&self, sub: Submission) -> Result<Outcome, StoreError> {
        let rules = self.rules();
        let _writer = self.ledger.lock();
        let store = self.ledger.store();
        let mut out = Outcome::default();
        let mut batch = Batch::default();
        let refuse = |out: &mut Outcome, line: u64, id: &str, reason: String| {
            out.refused.push(pb::Refusal {
                line,
                id: id.to_owned(),
                reason,
            })
        };

        let mut seen: HashMap<&str, u64> = HashMap::with_capacity(sub.cases.len());
        for (line, case) in &sub.cases {
            let (id, record) = match records::parse_case(case, &rules) {
                Ok(parsed) => parsed,
                Err(reason) => {
                    refuse(&mut out, *line, &case.id, reason);
                    continue;
                }
            };
            if let Some(first) = seen.insert(case.id.as_str(), *line) {
                let reason = format!("id ({id}): duplicate in this batch (first on line {first})");
                refuse(&mut out, *line, &id, reason);
                continue;
            }
            let old_month = layout::case_month(store, &id)?;
            if old_month.is_some() {
                let old = layout::load_case(store, &id)?;
                if let Some(old) = old {
                    if let Err(reason) = records::check_case_change(&old, &record) {
                        refuse(&mut out, *line, &id, reason);
                        continue;
                    }
                    if old == record {
                        out.accepted += 1;
                        continue;
                    }
                }
            }
            let month = record.month();
            if let Some(old) = old_month.filter(|m| *m != month) {
                batch.delete(Cf::Cases, layout::record_key(old, &id));
                out.months_changed.insert(old);
            }
            batch.put(
                Cf::Cases,
                layout::record_key(month, &id),
                CaseRow::from_record(&record).encode_to_vec(),
            );
            batch.put(Cf::CaseIds, id.as_bytes(), layout::month_key(month));
            out.months_changed.insert(month);
            out.accepted += 1;
        }

        let mut seen: HashMap<&str, u64> = HashMap::with_capacity(sub.tasks.len());
        for (line, task) in &sub.tasks {
            let (id, title, record) = match records::parse_task(task) {
                Ok(parsed) => parsed,
                Err(reason) => {
                    refuse(&mut out, *line, &task.id, reason);
                    continue;
                }
            };
            if let Some(first) = seen.insert(task.id.as_str(), *line) {
                let reason = format!("id ({id}): duplicate in this batch (first on line {first})");
                refuse(&mut out, *line, &id, reason);
                continue;
            }
            let old_month = layout::task_month(store, &id)?;
            if let Some(old) = layout::load_task(store, &id)? {
                let old_record = old.to_record()?;
                if let Err(reason) = records::check_task_change(&old_record, &record) {
                    refuse(&mut out, *line, &id, reason);
                    continue;
                }
                if old_record == record && old.title == title {
                    out.accepted += 1;
                    continue;
                }
            }
            let month = record.month();
            if let Some(old) = old_month.filter(|m| *m != month) {
                batch.delete(Cf::Tasks, layout::record_key(old, &id));
                out.months_changed.insert(old);
            }
            batch.put(
                Cf::Tasks,
                layout::record_key(month, &id),
                TaskRow::from_record(&record, &title).encode_to_vec(),
            );
            batch.put(Cf::TaskIds, id.as_bytes(), layout::month_key(month));
            out.months_changed.insert(month);
            out.accepted += 1;
        }

        if !out.refused.is_empty() && !sub.skip_invalid {
            out.refused.sort_by_key(|r| r.line);
            return Ok(Outcome {
                accepted: 0,
                refused: out.refused,
                months_changed: BTreeSet::new(),
            });
        }
        out.refused.sort_by_key(|r| r.line);
        if sub.dry_run {
            // Nothing is stored, so no month changes.
            return Ok(Outcome {
                accepted: 0,
                refused: out.refused,
                months_changed: BTreeSet::new(),
            });
        }
        self.commit(batch, &out.months_changed)?;
        Ok(out)
    }

    /// Checks and stores directly entered figures for a month. Returns the
    /// refusal reason when the entry breaks a rule. Blocking.
    pub fn record_direct(
        &self,
        entry: &pb::DirectTally,
    ) -> Result<Result<Outcome, String>, StoreError> {
        let direct = match records::parse_direct(entry, &self.rules()) {
            Ok(d) => d,
            Err(reason) => return Ok(Err(reason)),
        };
        let _writer = self.ledger.lock();
        let mut batch = Batch::default();
        for (category, counts) in &direct.cases {
            let row = pb::CaseCounts {
                category: category.to_pb() as i32,
                registered: counts.registered,
                resolved: counts.resolved,
                escalated: counts.escalated,
                in_progress: counts.in_progress,
                resolved_on_time: counts.resolved_on_time,
            };
            batch.put(
                Cf::Direct,
                layout::direct_key(direct.month, category.index() as u8),
                row.encode_to_vec(),
            );
        }
        if let Some(t) = &direct.tasks {
            let row = pb::TaskCounts {
                assigned: t.assigned,
                completed: t.completed,
                in_progress: t.in_progress,
                overdue: t.overdue,
            };
            batch.put(
                Cf::Direct,
                layout::direct_key(direct.month, DIRECT_TASKS_SLOT),
                row.encode_to_vec(),
            );
        }
        let months = BTreeSet::from([direct.month]);
        self.commit(batch, &months)?;
        Ok(Ok(Outcome {
            accepted: (direct.cases.len() + usize::from(direct.tasks.is_some())) as u64,
            refused: Vec::new(),
            months_changed: months,
        }))
    }

    /// Writes the batch with the dirty marks of `months`, durably.
    fn commit(&self, mut batch: Batch, months: &BTreeSet<Month>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        for m in months {
            batch.put(Cf::Dirty, layout::month_key(*m), Vec::new());
        }
        self.ledger.write_changes(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    fn intake() -> Intake {
        let ledger = Arc::new(Ledger::new(Arc::new(MemStore::new())));
        Intake::new(ledger, Clock::new(8), IntakeConfig::default())
    }

    fn case(id: &str, state: pb::CaseState, closed: &str) -> pb::Case {
        pb::Case {
            id: id.into(),
            category: pb::Category::Neighbour as i32,
            registered_on: "2025-03-02".into(),
            state: state as i32,
            closed_on: closed.into(),
            deadline: "2025-03-30".into(),
        }
    }

    fn sub(cases: Vec<pb::Case>, skip_invalid: bool) -> Submission {
        Submission {
            cases: cases
                .into_iter()
                .enumerate()
                .map(|(i, c)| (i as u64 + 2, c))
                .collect(),
            tasks: vec![],
            skip_invalid,
            dry_run: false,
        }
    }

    #[test]
    fn a_refused_row_stores_nothing_unless_skipping() {
        let intake = intake();
        let good = case("A", pb::CaseState::InProgress, "");
        let bad = case("B", pb::CaseState::Resolved, "");
        let out = intake
            .record(sub(vec![good.clone(), bad.clone()], false))
            .expect("record");
        assert_eq!(out.accepted, 0);
        assert_eq!(out.refused.len(), 1);
        assert_eq!(out.refused[0].line, 3);
        assert_eq!(
            out.refused[0].reason,
            "closed_on: required when state is resolved"
        );
        assert!(
            layout::load_case(intake.ledger.store(), "A")
                .expect("load")
                .is_none()
        );

        let out = intake.record(sub(vec![good, bad], true)).expect("record");
        assert_eq!(out.accepted, 1);
        assert!(
            layout::load_case(intake.ledger.store(), "A")
                .expect("load")
                .is_some()
        );
        let dirty = layout::dirty_months(intake.ledger.store()).expect("dirty");
        assert_eq!(dirty, vec![Month::parse("2025-03").expect("month")]);
    }

    #[test]
    fn duplicates_and_backward_states_are_refused() {
        let intake = intake();
        let a = case("A", pb::CaseState::Resolved, "2025-03-10");
        let out = intake
            .record(sub(vec![a.clone(), a.clone()], false))
            .expect("record");
        assert_eq!(
            out.refused[0].reason,
            "id (A): duplicate in this batch (first on line 2)"
        );

        intake.record(sub(vec![a.clone()], false)).expect("record");
        // Same again: accepted, nothing changes.
        let out = intake.record(sub(vec![a], false)).expect("record");
        assert_eq!((out.accepted, out.months_changed.len()), (1, 0));
        let back = case("A", pb::CaseState::InProgress, "");
        let out = intake.record(sub(vec![back], false)).expect("record");
        assert!(
            out.refused[0]
                .reason
                .contains("cannot go back from resolved")
        );
    }

    #[test]
    fn moving_a_case_to_another_month_dirties_both() {
        let intake = intake();
        intake
            .record(sub(vec![case("A", pb::CaseState::InProgress, "")], false))
            .expect("record");
        let mut moved = case("A", pb::CaseState::InProgress, "");
        moved.registered_on = "2025-04-01".into();
        moved.deadline = "2025-04-30".into();
        let out = intake.record(sub(vec![moved], false)).expect("record");
        let months: Vec<String> = out.months_changed.iter().map(|m| m.to_string()).collect();
        assert_eq!(months, ["2025-03", "2025-04"]);
        let store = intake.ledger.store();
        let today = chrono::NaiveDate::from_ymd_opt(2025, 6, 1).expect("date");
        let march =
            layout::local_tally(store, Month::parse("2025-03").expect("m"), today).expect("t");
        let april =
            layout::local_tally(store, Month::parse("2025-04").expect("m"), today).expect("t");
        assert!(march.is_zero());
        assert_eq!(april.case_totals().registered, 1);
    }
}
