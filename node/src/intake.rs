//! Intake: checking and storing the unit's cases, tasks and direct tallies.
//!
//! A submission is checked row by row against the rules ([`crate::records`])
//! and against what is stored (states only move forward), then written in
//! one synced batch together with the "dirty" marks of the months it changes,
//! so a crash can never lose a change the signer has yet to sign. Bulk
//! imports ([`import`]) check the same way, chunk by chunk, and stage the
//! rows until the stream ends.

pub mod import;

use std::{
    collections::{BTreeSet, HashMap},
    fmt,
    sync::Arc,
};

use tallytree_aggregator::{CaseRecord, TaskRecord};
use tallytree_proto::{Month, pb};
use tokio::sync::watch;

use crate::{
    clock::Clock,
    config::IntakeConfig,
    ledger::Ledger,
    records::{self, Rules, Violation},
    store::{
        Batch, Cf, Store, StoreError,
        layout::{self, CaseRow, DirectRow, StagedKind, TaskRow},
    },
};

/// Most refused rows quoted in the message of a refused unary call.
const QUOTED_REFUSALS: usize = 10;

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

/// The kinds of rows intake stores by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    /// Dispute cases.
    Cases,
    /// Governance tasks.
    Tasks,
}

impl fmt::Display for RowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RowKind::Cases => "cases",
            RowKind::Tasks => "tasks",
        })
    }
}

/// A refused row: where it was, its id, and the rule it breaks.
#[derive(Debug, Clone, PartialEq)]
pub struct RowRefusal {
    /// Case or task.
    pub kind: RowKind,
    /// The caller's line number.
    pub line: u64,
    /// The row's id as sent (may be empty).
    pub id: String,
    /// The rule.
    pub violation: Violation,
}

impl RowRefusal {
    /// The wire form.
    pub fn to_pb(&self) -> pb::Refusal {
        pb::Refusal {
            line: self.line,
            id: self.id.clone(),
            reason: self.violation.to_string(),
        }
    }
}

/// "cases line 3 (id B): closed_on: required when state is resolved".
impl fmt::Display for RowRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}", self.kind, self.line)?;
        if !self.id.is_empty() {
            write!(f, " (id {})", self.id)?;
        }
        write!(f, ": {}", self.violation)
    }
}

/// What happened to a submission.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// Rows durably stored (unchanged rows included).
    pub accepted: u64,
    /// Rows refused, by line.
    pub refused: Vec<RowRefusal>,
    /// Months whose records changed.
    pub months_changed: BTreeSet<Month>,
}

impl Outcome {
    /// The wire form.
    pub fn to_pb(&self) -> pb::RecordResponse {
        pb::RecordResponse {
            accepted: self.accepted,
            refused: self.refused.iter().map(RowRefusal::to_pb).collect(),
            months_changed: self.months_changed.iter().map(Month::to_string).collect(),
        }
    }

    fn refuse(&mut self, kind: RowKind, line: u64, id: &str, violation: Violation) {
        self.refused.push(RowRefusal {
            kind,
            line,
            id: id.to_owned(),
            violation,
        });
    }

    /// The outcome once the rows are refused whole or only checked:
    /// nothing stored, the refusals by line.
    fn nothing_stored(mut self) -> Outcome {
        self.refused.sort_by_key(|r| r.line);
        Outcome {
            accepted: 0,
            refused: self.refused,
            months_changed: BTreeSet::new(),
        }
    }
}

/// Why input was refused as a whole. Nothing was stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    /// Rows of an all-or-nothing call break rules.
    #[error("{}", rows_message(refused, *rows))]
    Rows {
        /// The refused rows, by line.
        refused: Vec<RowRefusal>,
        /// Rows in the call.
        rows: usize,
    },
    /// A direct tally breaks a rule.
    #[error(transparent)]
    Rule(#[from] Violation),
    /// A bulk import longer than `intake.max_import_rows`.
    #[error("import: more than {max} rows in one import (intake.max_import_rows); split the file")]
    TooManyRows {
        /// The limit.
        max: u64,
    },
}

/// "2 of 5 rows refused, nothing stored: cases line 3 (id B): closed_on:
/// ...; ...", quoting the first [`QUOTED_REFUSALS`].
fn rows_message(refused: &[RowRefusal], rows: usize) -> String {
    let mut msg = format!("{} of {rows} rows refused, nothing stored", refused.len());
    for (i, r) in refused.iter().take(QUOTED_REFUSALS).enumerate() {
        msg.push_str(if i == 0 { ": " } else { "; " });
        msg.push_str(&r.to_string());
    }
    if refused.len() > QUOTED_REFUSALS {
        msg.push_str(&format!("; and {} more", refused.len() - QUOTED_REFUSALS));
    }
    msg
}

/// Why intake did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The input breaks a rule; nothing was stored. The caller's to fix.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// Storage failed. The node's problem.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Violation> for IntakeError {
    fn from(v: Violation) -> IntakeError {
        IntakeError::Refused(Refused::Rule(v))
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
            refused: Vec::new(),
            months_changed: months,
        })
    }
}

/// Adds the dirty marks of `months` to `batch`.
fn mark_dirty(batch: &mut Batch, months: &BTreeSet<Month>) {
    for m in months {
        batch.put(Cf::Dirty, layout::month_key(*m), Vec::new());
    }
}

/// A kind of record intake stores by id: its rules, its column families and
/// its stored form.
trait Kind {
    /// As sent.
    type Sent;
    /// As checked; equal when storing it again would change nothing.
    type Record: PartialEq;
    /// For refusals.
    const ROWS: RowKind;
    /// Rows by month and id.
    const RECORDS: Cf;
    /// Id to month.
    const IDS: Cf;
    /// Where its rows are staged.
    const STAGED: StagedKind;

    fn id(sent: &Self::Sent) -> &str;
    fn parse(sent: &Self::Sent, rules: &Rules) -> Result<Self::Record, Violation>;
    fn month(record: &Self::Record) -> Month;
    fn encode(record: &Self::Record) -> Vec<u8>;
    fn decode(row: &[u8]) -> Result<Self::Record, StoreError>;
    fn check_change(old: &Self::Record, new: &Self::Record) -> Result<(), Violation>;
}

/// Dispute cases.
struct Cases;

impl Kind for Cases {
    type Sent = pb::Case;
    type Record = CaseRecord;
    const ROWS: RowKind = RowKind::Cases;
    const RECORDS: Cf = Cf::Cases;
    const IDS: Cf = Cf::CaseIds;
    const STAGED: StagedKind = StagedKind::Case;

    fn id(sent: &pb::Case) -> &str {
        &sent.id
    }
    fn parse(sent: &pb::Case, rules: &Rules) -> Result<CaseRecord, Violation> {
        records::case_record(sent, rules)
    }
    fn month(record: &CaseRecord) -> Month {
        record.month()
    }
    fn encode(record: &CaseRecord) -> Vec<u8> {
        prost::Message::encode_to_vec(&CaseRow::from_record(record))
    }
    fn decode(row: &[u8]) -> Result<CaseRecord, StoreError> {
        CaseRow::from_bytes(row)?.to_record()
    }
    fn check_change(old: &CaseRecord, new: &CaseRecord) -> Result<(), Violation> {
        records::check_case_change(old, new)
    }
}

/// Governance tasks, with their titles.
struct Tasks;

impl Kind for Tasks {
    type Sent = pb::Task;
    type Record = (TaskRecord, String);
    const ROWS: RowKind = RowKind::Tasks;
    const RECORDS: Cf = Cf::Tasks;
    const IDS: Cf = Cf::TaskIds;
    const STAGED: StagedKind = StagedKind::Task;

    fn id(sent: &pb::Task) -> &str {
        &sent.id
    }
    fn parse(sent: &pb::Task, _rules: &Rules) -> Result<(TaskRecord, String), Violation> {
        let (_, title, record) = records::parse_task(sent)?;
        Ok((record, title))
    }
    fn month(record: &(TaskRecord, String)) -> Month {
        record.0.month()
    }
    fn encode((record, title): &(TaskRecord, String)) -> Vec<u8> {
        prost::Message::encode_to_vec(&TaskRow::from_record(record, title))
    }
    fn decode(row: &[u8]) -> Result<(TaskRecord, String), StoreError> {
        let row = TaskRow::from_bytes(row)?;
        Ok((row.to_record()?, row.title))
    }
    fn check_change(
        old: &(TaskRecord, String),
        new: &(TaskRecord, String),
    ) -> Result<(), Violation> {
        records::check_task_change(&old.0, &new.0)
    }
}

/// What storing a checked row does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// Nothing: the row is refused (and reported).
    Refused,
    /// Nothing: the same row is stored.
    Unchanged,
    /// Stores the row under `month`, removing it from `moved_from`.
    Write {
        /// Where it goes.
        month: Month,
        /// Where it is now, if elsewhere.
        moved_from: Option<Month>,
    },
}

/// A row checked against the rules and the store.
struct Checked<'a> {
    /// The caller's line.
    line: u64,
    /// Its id.
    id: &'a str,
    /// The encoded stored form ([`CaseRow`], [`TaskRow`]); empty if refused.
    row: Vec<u8>,
    /// What storing it does.
    change: Change,
    /// Its column families.
    cfs: (Cf, Cf),
}

impl Checked<'_> {
    /// Adds the row's writes, if any, to `batch`.
    fn write(self, batch: &mut Batch) {
        if let Change::Write { month, moved_from } = self.change {
            write_row(
                batch,
                self.cfs,
                self.id.as_bytes(),
                self.row,
                month,
                moved_from,
            );
        }
    }
}

/// The writes that store `row` (of the kind whose column families are
/// `(records, ids)`) under `month`, moving it from `moved_from`. Applying
/// them twice is applying them once: imports replay them after a crash.
fn write_row(
    batch: &mut Batch,
    (records, ids): (Cf, Cf),
    id: &[u8],
    row: Vec<u8>,
    month: Month,
    moved_from: Option<Month>,
) {
    let key = |m: Month| {
        let mut k = Vec::with_capacity(4 + id.len());
        k.extend_from_slice(&layout::month_key(m));
        k.extend_from_slice(id);
        k
    };
    if let Some(old) = moved_from {
        batch.delete(records, key(old));
    }
    batch.put(records, key(month), row);
    batch.put(ids, id, layout::month_key(month).to_vec());
}

/// The ids seen so far in a batch or import, to refuse repeats.
#[derive(Default)]
struct Seen<'a> {
    /// Ids of the rows being checked, with their lines.
    here: HashMap<&'a str, u64>,
    /// The import's earlier chunks (none for a unary batch).
    earlier: Option<import::EarlierChunks<'a>>,
}

impl<'a> Seen<'a> {
    /// The line `id` came first on, or `None` (and `id` is now seen on
    /// `line`).
    fn first_line(&mut self, id: &'a str, line: u64) -> Result<Option<u64>, StoreError> {
        if let Some(first) = self.here.get(id) {
            return Ok(Some(*first));
        }
        if let Some(earlier) = &mut self.earlier
            && let Some(first) = earlier.first_line(id)?
        {
            return Ok(Some(first));
        }
        self.here.insert(id, line);
        Ok(None)
    }
}

/// Checks rows of one kind: rules, repeats (`seen`), then the stored rows in
/// one batched lookup, so that states only move forward. Refusals go to
/// `out`, as do the accepted count and the months the writes change.
fn check_rows<'a, K: Kind>(
    store: &dyn Store,
    rules: &Rules,
    rows: impl Iterator<Item = (u64, &'a K::Sent)>,
    seen: &mut Seen<'a>,
    out: &mut Outcome,
) -> Result<Vec<Checked<'a>>, StoreError>
where
    K::Sent: 'a,
{
    let mut parsed: Vec<(u64, &'a str, K::Record)> = Vec::new();
    let mut checked = Vec::new();
    for (line, sent) in rows {
        let id = K::id(sent);
        let record = match K::parse(sent, rules) {
            Ok(record) => record,
            Err(v) => {
                out.refuse(K::ROWS, line, id, v);
                continue;
            }
        };
        if let Some(first_line) = seen.first_line(id, line)? {
            let v = Violation::Duplicate {
                id: id.to_owned(),
                first_line,
            };
            out.refuse(K::ROWS, line, id, v);
            continue;
        }
        parsed.push((line, id, record));
    }
    let stored = stored_rows::<K>(store, parsed.iter().map(|(_, id, _)| *id))?;
    for ((line, id, record), stored) in parsed.into_iter().zip(stored) {
        let change = match change::<K>(stored, &record) {
            Ok(change) => change,
            Err(v) => {
                out.refuse(K::ROWS, line, id, v);
                Change::Refused
            }
        };
        count(out, change);
        let row = if change == Change::Refused {
            Vec::new()
        } else {
            K::encode(&record)
        };
        checked.push(Checked {
            line,
            id,
            row,
            change,
            cfs: (K::RECORDS, K::IDS),
        });
    }
    Ok(checked)
}

/// Counts a checked row in the outcome.
fn count(out: &mut Outcome, change: Change) {
    match change {
        Change::Refused => {}
        Change::Unchanged => out.accepted += 1,
        Change::Write { month, moved_from } => {
            out.accepted += 1;
            out.months_changed.insert(month);
            out.months_changed.extend(moved_from);
        }
    }
}

/// The month an id is stored under and its stored row, if any.
type Stored<K> = (Option<Month>, Option<<K as Kind>::Record>);

/// What storing `record` does, given the stored month and row of its id.
fn change<K: Kind>(stored: Stored<K>, record: &K::Record) -> Result<Change, Violation> {
    let (old_month, old) = stored;
    if let Some(old) = &old {
        K::check_change(old, record)?;
        if old == record {
            return Ok(Change::Unchanged);
        }
    }
    let month = K::month(record);
    Ok(Change::Write {
        month,
        moved_from: old_month.filter(|m| *m != month),
    })
}

/// The stored month and row of each id, in order: two batched lookups (ids,
/// then the rows found), or none when every id sorts outside the stored ids
/// (the common case of a first import, or of ids that only grow).
fn stored_rows<'a, K: Kind>(
    store: &dyn Store,
    ids: impl Iterator<Item = &'a str> + Clone,
) -> Result<Vec<Stored<K>>, StoreError> {
    let n = ids.clone().count();
    let none = || (0..n).map(|_| (None, None)).collect();
    let (Some(lo), Some(hi)) = (ids.clone().min(), ids.clone().max()) else {
        return Ok(none());
    };
    if !may_hold_between(store, K::IDS, lo.as_bytes(), hi.as_bytes())? {
        return Ok(none());
    }
    let keys: Vec<&[u8]> = ids.clone().map(str::as_bytes).collect();
    let months = store
        .multi_get(K::IDS, &keys)?
        .into_iter()
        .map(|m| {
            m.map(|m| layout::month_of_key(&m, K::IDS.name()))
                .transpose()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let found: Vec<Vec<u8>> = ids
        .zip(&months)
        .filter_map(|(id, m)| m.map(|m| layout::record_key(m, id)))
        .collect();
    let found: Vec<&[u8]> = found.iter().map(Vec::as_slice).collect();
    let mut rows = store.multi_get(K::RECORDS, &found)?.into_iter();
    months
        .into_iter()
        .map(|month| {
            let row = match month {
                Some(_) => rows.next().flatten().map(|b| K::decode(&b)).transpose()?,
                None => None,
            };
            Ok((month, row))
        })
        .collect()
}

/// False when `cf` certainly holds no key in `lo..=hi`: it is empty, or its
/// keys all sort before `lo` or after `hi`. Two seeks.
fn may_hold_between(store: &dyn Store, cf: Cf, lo: &[u8], hi: &[u8]) -> Result<bool, StoreError> {
    let Some((last, _)) = store.last(cf, b"")? else {
        return Ok(false);
    };
    if last.as_slice() < lo {
        return Ok(false);
    }
    let mut first = None;
    store.scan(cf, b"", &mut |k, _| {
        first = Some(k.to_vec());
        false
    })?;
    Ok(first.is_some_and(|first| first.as_slice() <= hi))
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

    #[test]
    fn stored_ids_are_looked_up_only_when_they_may_be_there() {
        let store = MemStore::new();
        let mut b = Batch::default();
        for id in ["C-10", "C-20"] {
            b.put(Cf::CaseIds, id, vec![0; 4]);
        }
        store.write(b).expect("write");
        let between = |lo: &str, hi: &str| {
            may_hold_between(&store, Cf::CaseIds, lo.as_bytes(), hi.as_bytes()).expect("seek")
        };
        assert!(!between("C-00", "C-09"));
        assert!(!between("C-21", "C-99"));
        assert!(between("C-00", "C-10"));
        assert!(between("C-20", "C-99"));
        assert!(between("C-11", "C-19"), "a range, not a membership test");
        assert!(!may_hold_between(&store, Cf::TaskIds, b"a", b"z").expect("empty"));
    }
}
