//! Intake: checking and storing the unit's cases, tasks and direct tallies.
//!
//! A submission is checked row by row against the rules ([`crate::records`])
//! and against what is stored (states only move forward), then written in
//! one synced batch together with the "dirty" marks of the months it changes,
//! so a crash can never lose a change the signer has yet to sign. Bulk
//! imports ([`import`]) check the same way, chunk by chunk, and stage the
//! rows until the stream ends.
//!
//! Here: the service, [`Intake`]. What it answers ([`Outcome`],
//! [`IntakeError`]) is `outcome.rs`; the checks every row goes through,
//! shared with imports, are `rows.rs`.

pub mod import;
mod outcome;
mod rows;

use std::{collections::BTreeSet, sync::Arc};

use tallytree_proto::{Month, pb};
use tokio::sync::watch;

pub use self::outcome::{IntakeError, LISTED_REFUSALS, Outcome, Refused, RowKind, RowRefusal};
use self::rows::{Cases, Seen, Tasks, check_rows};
use crate::{
    clock::Clock,
    config::IntakeConfig,
    ledger::Ledger,
    records::{self, Rules},
    store::{
        Batch, Cf,
        layout::{self, DirectRow},
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

/// The intake service of one node. Clones share the running imports.
#[derive(Debug, Clone)]
pub struct Intake {
    /// Where records go.
    ledger: Arc<Ledger>,
    /// For "today".
    clock: Clock,
    /// Defaults and limits.
    config: IntakeConfig,
    /// Number of imports with rows in staging, so that a stopping node
    /// waits until they have committed or cleaned up.
    running: Arc<watch::Sender<usize>>,
}

impl Intake {
    /// Intake over `ledger`.
    pub fn new(ledger: Arc<Ledger>, clock: Clock, config: IntakeConfig) -> Intake {
        Intake {
            ledger,
            clock,
            config,
            running: Arc::new(watch::Sender::new(0)),
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

    /// Resolves once no import is running (committing or cleaning up).
    pub async fn imports_finished(&self) {
        let mut rx = self.running.subscribe();
        // The sender lives in `self`: the wait ends only with the count.
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Checks and stores a submission. All or nothing unless `skip_invalid`;
    /// refused rows are reported in the outcome. Blocking: call from a
    /// blocking thread.
    pub fn record(&self, sub: Submission) -> Result<Outcome, IntakeError> {
        let rules = self.rules();
        let _writer = self.ledger.lock();
        import::finish_committed(&self.ledger)?;
        let store = self.ledger.store();
        let mut out = Outcome::default();
        let mut batch = Batch::default();

        let mut seen = Seen::default();
        let cases = sub.cases.iter().map(|(line, c)| (*line, c));
        for row in check_rows::<Cases>(store, &rules, cases, &mut seen, &mut out)? {
            row.write(&mut batch);
        }
        let mut seen = Seen::default();
        let tasks = sub.tasks.iter().map(|(line, t)| (*line, t));
        for row in check_rows::<Tasks>(store, &rules, tasks, &mut seen, &mut out)? {
            row.write(&mut batch);
        }

        if (!out.refused.is_empty() && !sub.skip_invalid) || sub.dry_run {
            // Nothing is stored, so no month changes.
            return Ok(out.nothing_stored());
        }
        out.refused.sort_by_key(|r| r.line);
        if !batch.is_empty() {
            mark_dirty(&mut batch, &out.months_changed);
            self.ledger.write_changes(batch)?;
            self.ledger.records_written();
        }
        Ok(out)
    }

    /// Checks and stores the rows of a unary call: a refused row refuses
    /// the whole call ([`Refused::Rows`]). Blocking.
    pub fn record_all(&self, sub: Submission) -> Result<Outcome, IntakeError> {
        let rows = sub.len();
        let sub = Submission {
            skip_invalid: false,
            dry_run: false,
            ..sub
        };
        let out = self.record(sub)?;
        if !out.refused.is_empty() {
            return Err(Refused::Rows {
                refused: out.refused,
                count: out.refused_count,
                rows,
            }
            .into());
        }
        Ok(out)
    }

    /// Checks and stores directly entered figures for a month. Blocking.
    pub fn record_direct(&self, entry: &pb::DirectTally) -> Result<Outcome, IntakeError> {
        let direct = records::parse_direct(entry, &self.rules())?;
        let _writer = self.ledger.lock();
        let mut batch = Batch::default();
        let cases = direct.cases.iter().map(|(c, n)| DirectRow::Cases(*c, *n));
        for row in cases.chain(direct.tasks.map(DirectRow::Tasks)) {
            batch.put(
                Cf::Direct,
                layout::direct_key(direct.month, row.slot()),
                row.encode(),
            );
        }
        let months = BTreeSet::from([direct.month]);
        mark_dirty(&mut batch, &months);
        self.ledger.write_changes(batch)?;
        Ok(Outcome {
            accepted: (direct.cases.len() + usize::from(direct.tasks.is_some())) as u64,
            months_changed: months,
            ..Outcome::default()
        })
    }
}

/// Adds the dirty marks of `months` to `batch`.
fn mark_dirty(batch: &mut Batch, months: &BTreeSet<Month>) {
    for m in months {
        batch.put(Cf::Dirty, layout::month_key(*m), Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{records::Violation, store::MemStore};

    /// Intake over an empty in-memory store.
    pub(super) fn intake() -> Intake {
        let ledger = Arc::new(Ledger::new(Arc::new(MemStore::new())));
        Intake::new(ledger, Clock::new(8), IntakeConfig::default())
    }

    /// A case of March 2025 in the neighbour category, due on the 30th.
    pub(super) fn case(id: &str, state: pb::CaseState, closed: &str) -> pb::Case {
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
            out.refused[0].violation.to_string(),
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
    fn a_refused_unary_call_names_each_row() {
        let intake = intake();
        let rows = vec![
            case("A", pb::CaseState::InProgress, ""),
            case("B", pb::CaseState::Resolved, ""),
            case("", pb::CaseState::InProgress, ""),
        ];
        let err = intake.record_all(sub(rows, true)).expect_err("refused");
        assert!(matches!(err, IntakeError::Refused(Refused::Rows { .. })));
        assert_eq!(
            err.to_string(),
            "2 of 3 rows refused, nothing stored: \
             cases line 3 (id B): closed_on: required when state is resolved; \
             cases line 4: id: required"
        );
        assert!(
            layout::load_case(intake.ledger.store(), "A")
                .expect("load")
                .is_none(),
            "skip_invalid does not apply to unary calls"
        );
    }

    #[test]
    fn duplicates_and_backward_states_are_refused() {
        let intake = intake();
        let a = case("A", pb::CaseState::Resolved, "2025-03-10");
        let out = intake
            .record(sub(vec![a.clone(), a.clone()], false))
            .expect("record");
        assert_eq!(
            out.refused[0].violation,
            Violation::Duplicate {
                id: "A".into(),
                first_line: 2
            }
        );
        assert_eq!(
            out.to_pb().refused[0].reason,
            "id (A): duplicate in this batch (first on line 2)"
        );

        intake.record(sub(vec![a.clone()], false)).expect("record");
        // Same again: accepted, nothing changes.
        let out = intake.record(sub(vec![a], false)).expect("record");
        assert_eq!((out.accepted, out.months_changed.len()), (1, 0));
        let back = case("A", pb::CaseState::InProgress, "");
        let out = intake.record(sub(vec![back], false)).expect("record");
        assert!(matches!(
            out.refused[0].violation,
            Violation::BackToInProgress { .. }
        ));
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
            crate::signer::tally::local_tally(store, Month::parse("2025-03").expect("m"), today)
                .expect("t");
        let april =
            crate::signer::tally::local_tally(store, Month::parse("2025-04").expect("m"), today)
                .expect("t");
        assert!(march.is_zero());
        assert_eq!(april.case_totals().registered, 1);
    }
}
