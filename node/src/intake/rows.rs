//! Checking rows against the rules and the store: one generic check for
//! every kind of record intake stores by id ([`Kind`]: cases, tasks), which
//! finds repeated ids ([`Seen`]), reads the stored rows in one batched
//! lookup so that states only move forward, and says what storing each row
//! does ([`Change`]); and the writes that store a checked row.

use std::collections::HashMap;

use tallytree_aggregator::{CaseRecord, TaskRecord};
use tallytree_proto::{Month, pb};

use super::{
    import::EarlierChunks,
    outcome::{Outcome, RowKind},
};
use crate::{
    records::{self, Rules, Violation},
    store::{
        self, Batch, Cf, Store, StoreError,
        layout::{self, CaseRow, StagedKind, TaskRow},
    },
};

/// A kind of record intake stores by id: its rules, its column families and
/// its stored form.
pub(super) trait Kind {
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
pub(super) struct Cases;

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
pub(super) struct Tasks;

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
pub(super) enum Change {
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
pub(super) struct Checked<'a> {
    /// The caller's line.
    pub(super) line: u64,
    /// Its id.
    pub(super) id: &'a str,
    /// The encoded stored form ([`CaseRow`], [`TaskRow`]); empty if refused.
    pub(super) row: Vec<u8>,
    /// What storing it does.
    pub(super) change: Change,
    /// Its column families.
    cfs: (Cf, Cf),
}

impl Checked<'_> {
    /// Adds the row's writes, if any, to `batch`.
    pub(super) fn write(self, batch: &mut Batch) {
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
pub(super) fn write_row(
    batch: &mut Batch,
    (records, ids): (Cf, Cf),
    id: &[u8],
    row: Vec<u8>,
    month: Month,
    moved_from: Option<Month>,
) {
    if let Some(old) = moved_from {
        batch.delete(records, layout::record_key(old, id));
    }
    batch.put(records, layout::record_key(month, id), row);
    batch.put(ids, id, layout::month_key(month).to_vec());
}

/// The ids seen so far in a batch or import, to refuse repeats.
#[derive(Default)]
pub(super) struct Seen<'a> {
    /// Ids of the rows being checked, with their lines.
    pub(super) here: HashMap<&'a str, u64>,
    /// The import's earlier chunks (none for a unary batch).
    pub(super) earlier: Option<EarlierChunks<'a>>,
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
pub(super) fn check_rows<'a, K: Kind>(
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
pub(super) fn count(out: &mut Outcome, change: Change) {
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
pub(super) type Stored<K> = (Option<Month>, Option<<K as Kind>::Record>);

/// What storing `record` does, given the stored month and row of its id.
pub(super) fn change<K: Kind>(stored: Stored<K>, record: &K::Record) -> Result<Change, Violation> {
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
pub(super) fn stored_rows<'a, K: Kind>(
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
    let first = store::first_key(store, cf, b"")?;
    Ok(first.is_some_and(|first| first.as_slice() <= hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

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
