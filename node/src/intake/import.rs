//! Bulk import: a stream of chunks, checked chunk by chunk and stored all or
//! nothing, in memory bounded by a chunk rather than by the import.
//!
//! Each chunk is checked like a unary batch (rules, repeated ids, states
//! only move forward against what is stored, in one batched lookup) and its
//! rows are written to the `staging` column family under the import's id,
//! without waiting for the disk. Repeats across chunks are found through a
//! 4-byte fingerprint per id, confirmed against staging. When the stream
//! ends, under the ledger's writer lock:
//!
//! 1. if records were written since the import started, the staged rows
//!    are checked against the store again;
//! 2. refused (without skip_invalid) or dry run: the staged rows are
//!    removed, nothing else was written;
//! 3. otherwise one synced batch writes the commit mark and the dirty marks
//!    of the months the import changes: from here on the import counts;
//! 4. the staged rows are applied in pages, unsynced;
//! 5. one synced batch removes the commit mark and the staged rows (syncing
//!    the log syncs the pages written before it).
//!
//! A stream that breaks (client gone, too many rows) removes its staged rows
//! when the [`Import`] is dropped. A crash leaves staged rows, and maybe a
//! commit mark: [`recover`], run before the node serves, applies committed
//! imports again (applying a staged row twice is applying it once) and
//! removes everything else. The signer never sees half an import: it needs
//! the writer lock, held from step 1 to 5, and signs nothing while a commit
//! mark is left from a failed step 4; the next intake call applies such an
//! import again before it writes anything.

use std::{
    collections::{HashMap, HashSet},
    hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use prost::Message;
use tallytree_proto::pb;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{
    Cases, Change, Checked, Intake, IntakeError, Kind, Outcome, Refused, Seen, Tasks, change,
    check_rows, count, mark_dirty, stored_rows, write_row,
};
use crate::{
    ledger::Ledger,
    records::Rules,
    store::{
        Batch, Cf, Store, StoreError,
        layout::{self, StagedKind, StagedRow},
    },
};

/// Staged rows applied or checked again per page.
const PAGE: usize = 8192;

/// Import ids: unique within the process, and staging is emptied at start,
/// so unique in the store.
static NEXT_IMPORT: AtomicU64 = AtomicU64::new(1);

impl Intake {
    /// Starts a bulk import. Feed it chunks with [`Import::add`], then
    /// [`Import::finish`]; dropping it unfinished removes what it staged.
    pub fn begin_import(&self) -> Import {
        self.running.send_modify(|n| *n += 1);
        Import {
            id: NEXT_IMPORT.fetch_add(1, Ordering::Relaxed),
            // Read before any row is checked: see `Ledger::records_generation`.
            generation: self.ledger.records_generation(),
            rules: self.rules(),
            intake: self.clone(),
            flags: None,
            rows: 0,
            out: Outcome::default(),
            writes: 0,
            case_ids: Fingerprints::default(),
            task_ids: Fingerprints::default(),
            staged: false,
            done: false,
            _running: RunningImport(self.running.clone()),
        }
    }
}

/// One bulk import in progress. Blocking: use from a blocking thread.
#[derive(Debug)]
pub struct Import {
    /// Where its rows are staged (key prefix in `staging`).
    id: u64,
    /// The records generation its checks read.
    generation: u64,
    /// Today, fixed for the whole import.
    rules: Rules,
    /// Ledger, limits, running count.
    intake: Intake,
    /// `skip_invalid` and `dry_run`, from the first chunk.
    flags: Option<(bool, bool)>,
    /// Rows received.
    rows: u64,
    /// Refusals, accepted count, months changed, so far.
    out: Outcome,
    /// Staged rows that change the store.
    writes: u64,
    /// Fingerprints of the case ids staged so far.
    case_ids: Fingerprints,
    /// Fingerprints of the task ids staged so far.
    task_ids: Fingerprints,
    /// Anything written to staging.
    staged: bool,
    /// Committed or cleaned up.
    done: bool,
    /// Counts the import as running until it is dropped.
    _running: RunningImport,
}

impl Import {
    /// Checks and stages one chunk. An error ends the import: drop it.
    pub fn add(&mut self, chunk: pb::ImportChunk) -> Result<(), IntakeError> {
        self.flags
            .get_or_insert((chunk.skip_invalid, chunk.dry_run));
        self.rows += (chunk.cases.len() + chunk.tasks.len()) as u64;
        let max = self.intake.config.max_import_rows;
        if self.rows > max {
            return Err(Refused::TooManyRows { max }.into());
        }
        let store = self.intake.ledger.store();
        let mut batch = Batch::default();

        let no_case = pb::Case::default();
        let cases = chunk
            .cases
            .iter()
            .map(|c| (c.line, c.case.as_ref().unwrap_or(&no_case)));
        let mut seen = Seen {
            here: HashMap::with_capacity(chunk.cases.len()),
            earlier: Some(EarlierChunks::new(
                store,
                self.id,
                StagedKind::Case,
                &mut self.case_ids,
            )),
        };
        for row in check_rows::<Cases>(store, &self.rules, cases, &mut seen, &mut self.out)? {
            stage(&mut batch, self.id, StagedKind::Case, row, &mut self.writes);
        }

        let no_task = pb::Task::default();
        let tasks = chunk
            .tasks
            .iter()
            .map(|t| (t.line, t.task.as_ref().unwrap_or(&no_task)));
        let mut seen = Seen {
            here: HashMap::with_capacity(chunk.tasks.len()),
            earlier: Some(EarlierChunks::new(
                store,
                self.id,
                StagedKind::Task,
                &mut self.task_ids,
            )),
        };
        for row in check_rows::<Tasks>(store, &self.rules, tasks, &mut seen, &mut self.out)? {
            stage(&mut batch, self.id, StagedKind::Task, row, &mut self.writes);
        }

        if !batch.is_empty() {
            self.staged = true;
            store.write_unsynced(batch)?;
        }
        debug!(import = self.id, rows = self.rows, "import chunk staged");
        Ok(())
    }

    /// Ends the stream: commits the import, or (refused without
    /// skip_invalid, or a dry run) removes it. The outcome's refusals are
    /// sorted by line.
    pub fn finish(mut self) -> Result<Outcome, IntakeError> {
        let (skip_invalid, dry_run) = self.flags.unwrap_or((false, false));
        // The stream is over: no more repeats to find. Free the fingerprints
        // (20 MB at 2,000,000 rows) before the commit's own memory peak.
        self.case_ids = Fingerprints::default();
        self.task_ids = Fingerprints::default();
        let ledger = self.intake.ledger.clone();
        let _writer = ledger.lock();
        let locked = std::time::Instant::now();
        finish_committed(&ledger)?;
        if ledger.records_generation() != self.generation {
            // Records changed while the import streamed: what its checks
            // read may be stale.
            self.check_again()?;
        }
        let mut out = std::mem::take(&mut self.out);
        if (!out.refused.is_empty() && !skip_invalid) || dry_run {
            self.discard()?;
            return Ok(out.nothing_stored());
        }
        out.refused.sort_by_key(|r| r.line);
        if self.writes == 0 {
            self.discard()?;
            return Ok(out);
        }
        let store = ledger.store();
        let mut batch = Batch::default();
        batch.put(Cf::Meta, layout::import_commit_key(self.id), Vec::new());
        mark_dirty(&mut batch, &out.months_changed);
        store.write(batch)?;
        // Committed: whatever happens now, the import is finished, here or at
        // the next start.
        self.done = true;
        apply_staged(store, self.id)?;
        ledger.write_changes(remove_staged(self.id))?;
        ledger.records_written();
        info!(
            rows = self.rows,
            accepted = out.accepted,
            refused = out.refused.len(),
            months = out.months_changed.len(),
            lock_ms = locked.elapsed().as_millis() as u64,
            "import committed"
        );
        Ok(out)
    }

    /// Checks every staged row against the store again and restages those
    /// whose effect changed; recounts the outcome. Under the writer lock.
    fn check_again(&mut self) -> Result<(), IntakeError> {
        self.out.accepted = 0;
        self.out.months_changed.clear();
        self.writes = 0;
        self.check_kind_again::<Cases>()?;
        self.check_kind_again::<Tasks>()?;
        Ok(())
    }

    fn check_kind_again<K: Kind>(&mut self) -> Result<(), StoreError> {
        let store = self.intake.ledger.store();
        let prefix = layout::staging_kind_prefix(self.id, K::STAGED);
        let mut from = prefix.to_vec();
        loop {
            let (page, next) = read_page(store, &prefix, &from)?;
            let mut rows = Vec::with_capacity(page.len());
            for (key, value) in &page {
                let staged = layout::staged_row(value)?;
                if staged.row.is_empty() {
                    // Refused while streaming: stays refused.
                    continue;
                }
                let id =
                    std::str::from_utf8(&key[prefix.len()..]).map_err(|_| StoreError::Corrupt {
                        cf: "staging",
                        reason: "id is not UTF-8".into(),
                    })?;
                rows.push((key, id, K::decode(&staged.row)?, staged));
            }
            let stored = stored_rows::<K>(store, rows.iter().map(|(_, id, _, _)| *id))?;
            let mut batch = Batch::default();
            for ((key, id, record, staged), stored) in rows.into_iter().zip(stored) {
                let now = match change::<K>(stored, &record) {
                    Ok(change) => change,
                    Err(v) => {
                        self.out.refuse(K::ROWS, staged.line, id, v);
                        Change::Refused
                    }
                };
                count(&mut self.out, now);
                let restaged = staged_row(staged.line, now, staged.row.clone());
                self.writes += u64::from(restaged.month.is_some());
                if restaged != staged {
                    batch.put(Cf::Staging, key.clone(), restaged.encode_to_vec());
                }
            }
            if !batch.is_empty() {
                store.write_unsynced(batch)?;
            }
            match next {
                Some(next) => from = next,
                None => return Ok(()),
            }
        }
    }

    /// Removes what the import staged.
    fn discard(&mut self) -> Result<(), StoreError> {
        self.done = true;
        if self.staged {
            self.intake.ledger.store().write(remove_staged(self.id))?;
        }
        Ok(())
    }
}

impl Drop for Import {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // The stream broke or a chunk was refused: leave nothing behind. A
        // failure here leaves rows that the next start removes.
        match self.discard() {
            Ok(()) => info!(
                rows = self.rows,
                "import ended before its stream did; nothing stored"
            ),
            Err(e) => {
                warn!(error = %e, "removing an unfinished import's rows failed; the next start removes them")
            }
        }
    }
}

/// Counts an import as running while it lives.
#[derive(Debug)]
struct RunningImport(Arc<watch::Sender<usize>>);

impl Drop for RunningImport {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The staged form of a checked row.
fn staged_row(line: u64, change: Change, row: Vec<u8>) -> StagedRow {
    let (row, month, moved_from) = match change {
        Change::Refused => (Vec::new(), None, None),
        Change::Unchanged => (row, None, None),
        Change::Write { month, moved_from } => {
            (row, Some(month.index()), moved_from.map(|m| m.index()))
        }
    };
    StagedRow {
        line,
        row,
        month,
        moved_from,
    }
}

/// Adds a checked row to the staging batch; counts the writes.
fn stage(batch: &mut Batch, import: u64, kind: StagedKind, row: Checked<'_>, writes: &mut u64) {
    *writes += u64::from(matches!(row.change, Change::Write { .. }));
    let staged = staged_row(row.line, row.change, row.row);
    batch.put(
        Cf::Staging,
        layout::staging_key(import, kind, row.id),
        staged.encode_to_vec(),
    );
}

/// Up to [`PAGE`] staged entries under `prefix` from `from` on, and where the
/// next page starts (none: this was the last).
type Page = (Vec<(Vec<u8>, Vec<u8>)>, Option<Vec<u8>>);

fn read_page(store: &dyn Store, prefix: &[u8], from: &[u8]) -> Result<Page, StoreError> {
    let mut page = Vec::with_capacity(PAGE);
    store.scan_from(Cf::Staging, prefix, from, &mut |k, v| {
        page.push((k.to_vec(), v.to_vec()));
        page.len() < PAGE
    })?;
    let next = (page.len() == PAGE).then(|| {
        // The smallest key after the last one read.
        let mut next = page[PAGE - 1].0.clone();
        next.push(0);
        next
    });
    Ok((page, next))
}

/// Applies the staged rows of `import` to the records, in pages, unsynced.
/// Idempotent: after a crash it runs again from the start.
fn apply_staged(store: &dyn Store, import: u64) -> Result<(), StoreError> {
    for (kind, cfs) in [
        (StagedKind::Case, (Cases::RECORDS, Cases::IDS)),
        (StagedKind::Task, (Tasks::RECORDS, Tasks::IDS)),
    ] {
        let prefix = layout::staging_kind_prefix(import, kind);
        let mut from = prefix.to_vec();
        loop {
            let (page, next) = read_page(store, &prefix, &from)?;
            let mut batch = Batch::default();
            for (key, value) in page {
                let staged = layout::staged_row(&value)?;
                let Some(month) = staged.month else {
                    continue;
                };
                let month = layout::month_of_index(month, "staging")?;
                let moved_from = staged
                    .moved_from
                    .map(|m| layout::month_of_index(m, "staging"))
                    .transpose()?;
                let id = &key[prefix.len()..];
                write_row(&mut batch, cfs, id, staged.row, month, moved_from);
            }
            if !batch.is_empty() {
                store.write_unsynced(batch)?;
            }
            match next {
                Some(next) => from = next,
                None => break,
            }
        }
    }
    Ok(())
}

/// The batch that removes an import's staged rows and commit mark.
fn remove_staged(import: u64) -> Batch {
    let mut batch = Batch::default();
    let from = layout::staging_prefix(import);
    let to = import.checked_add(1).map_or_else(
        || vec![u8::MAX; 9],
        |next| layout::staging_prefix(next).to_vec(),
    );
    batch.delete_range(Cf::Staging, from, to);
    batch.delete(Cf::Meta, layout::import_commit_key(import));
    batch
}

/// Finishes what a stopped node left in staging: applies the imports that
/// committed (their dirty marks are already stored, so the signer's
/// catch-up signs them) and removes every other staged row. Run it before
/// the node serves and before the signer's catch-up.
pub fn recover(ledger: &Ledger) -> Result<(), StoreError> {
    let _writer = ledger.lock();
    let store = ledger.store();
    finish_committed(ledger)?;
    let mut first = None;
    store.scan(Cf::Staging, b"", &mut |k, _| {
        first = Some(k.to_vec());
        false
    })?;
    if let (Some(first), Some((last, _))) = (first, store.last(Cf::Staging, b"")?) {
        let mut batch = Batch::default();
        batch.delete_range(Cf::Staging, first, last.clone());
        batch.delete(Cf::Staging, last);
        store.write(batch)?;
        info!("removed the rows of imports that had not committed when the node stopped");
    }
    Ok(())
}

/// Applies the imports that committed and were not fully applied: after a
/// crash, or an apply that failed (the storage refused a write). Call under
/// the writer lock before writing records, so that no newer change is ever
/// overwritten by an older import applied late.
pub(super) fn finish_committed(ledger: &Ledger) -> Result<(), StoreError> {
    let store = ledger.store();
    for import in layout::committed_imports(store)? {
        apply_staged(store, import)?;
        store.write(remove_staged(import))?;
        ledger.records_written();
        info!(import, "finished an import committed earlier");
    }
    Ok(())
}

/// True while an import is committed and not yet applied: its rows are half
/// written, and nothing may be derived from them. Only a failed apply
/// leaves it so while the node runs; the next intake call, or [`recover`]
/// at the next start, finishes it.
pub fn import_unfinished(store: &dyn Store) -> Result<bool, StoreError> {
    Ok(!layout::committed_imports(store)?.is_empty())
}

/// Repeated ids across an import's chunks: the ids already staged, as
/// fingerprints (a repeat is confirmed against staging, so a fingerprint
/// collision costs a lookup, never a false refusal).
pub(super) struct EarlierChunks<'a> {
    /// Where the earlier chunks' rows are staged.
    store: &'a dyn Store,
    /// Staging key prefix of this kind of row.
    prefix: [u8; 9],
    /// Fingerprints of the ids staged.
    fingerprints: &'a mut Fingerprints,
}

impl<'a> EarlierChunks<'a> {
    fn new(
        store: &'a dyn Store,
        import: u64,
        kind: StagedKind,
        fingerprints: &'a mut Fingerprints,
    ) -> EarlierChunks<'a> {
        EarlierChunks {
            store,
            prefix: layout::staging_kind_prefix(import, kind),
            fingerprints,
        }
    }

    /// The line `id` was staged with by an earlier chunk, if any; notes
    /// `id` as seen.
    pub(super) fn first_line(&mut self, id: &str) -> Result<Option<u64>, StoreError> {
        if self.fingerprints.insert(id) {
            return Ok(None);
        }
        let mut key = self.prefix.to_vec();
        key.extend_from_slice(id.as_bytes());
        self.store
            .get(Cf::Staging, &key)?
            .map(|v| layout::staged_row(&v).map(|r| r.line))
            .transpose()
    }
}

/// 4-byte fingerprints of ids under a per-import random key: about 5 bytes
/// of memory per row (2,000,000 rows: 20 MB), against some 50 for the ids.
/// With 2,000,000 ids, a few hundred pairs collide and cost a lookup each.
#[derive(Default)]
pub(super) struct Fingerprints {
    /// Keyed hash of the ids (random per import, so no chosen ids collide).
    key: RandomState,
    /// The fingerprints.
    set: HashSet<u32, BuildHasherDefault<Spread>>,
}

impl std::fmt::Debug for Fingerprints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Fingerprints({})", self.set.len())
    }
}

impl Fingerprints {
    /// Adds the fingerprint of `id`; false if it was there (maybe `id`).
    fn insert(&mut self, id: &str) -> bool {
        // Truncation intended: the fingerprint is the low 32 bits.
        self.set.insert(self.key.hash_one(id) as u32)
    }
}

/// Hashes a fingerprint (already uniformly random) by spreading it over 64
/// bits, as the table wants its high bits random too.
#[derive(Default)]
struct Spread(u64);

impl Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{clock::Clock, config::IntakeConfig, records::Violation, store::MemStore};

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
            deadline: String::new(),
        }
    }

    /// A chunk of in-progress cases `{prefix}-{i}` on lines from `first_line`.
    fn chunk(prefix: &str, n: usize, first_line: u64) -> pb::ImportChunk {
        pb::ImportChunk {
            cases: (0..n)
                .map(|i| pb::ImportCase {
                    line: first_line + i as u64,
                    case: Some(case(
                        &format!("{prefix}-{i}"),
                        pb::CaseState::InProgress,
                        "",
                    )),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn staged_entries(intake: &Intake) -> usize {
        let mut n = 0;
        intake
            .ledger
            .store()
            .scan(Cf::Staging, b"", &mut |_, _| {
                n += 1;
                true
            })
            .expect("scan");
        n
    }

    fn stored_cases(intake: &Intake) -> usize {
        let mut n = 0;
        intake
            .ledger
            .store()
            .scan(Cf::CaseIds, b"", &mut |_, _| {
                n += 1;
                true
            })
            .expect("scan");
        n
    }

    #[test]
    fn chunks_are_staged_then_committed_whole() {
        let intake = intake();
        let mut import = intake.begin_import();
        import.add(chunk("A", 100, 2)).expect("chunk");
        import.add(chunk("B", 100, 102)).expect("chunk");
        assert_eq!(staged_entries(&intake), 200);
        assert_eq!(stored_cases(&intake), 0, "nothing stored before the end");
        let out = import.finish().expect("commit");
        assert_eq!(out.accepted, 200);
        assert_eq!(stored_cases(&intake), 200);
        assert_eq!(staged_entries(&intake), 0);
        assert!(!import_unfinished(intake.ledger.store()).expect("marks"));
        let dirty = layout::dirty_months(intake.ledger.store()).expect("dirty");
        assert_eq!(dirty.len(), 1);
    }

    #[test]
    fn an_id_repeated_in_a_later_chunk_is_refused_with_its_first_line() {
        let intake = intake();
        let mut import = intake.begin_import();
        import.add(chunk("A", 10, 2)).expect("chunk");
        import.add(chunk("A", 3, 500)).expect("chunk");
        let out = import.finish().expect("answer");
        assert_eq!(out.accepted, 0);
        let lines: Vec<u64> = out.refused.iter().map(|r| r.line).collect();
        assert_eq!(lines, [500, 501, 502]);
        assert_eq!(
            out.refused[1].violation,
            Violation::Duplicate {
                id: "A-1".into(),
                first_line: 3
            }
        );
        assert_eq!(
            staged_entries(&intake),
            0,
            "a refused import leaves no staging"
        );
        assert_eq!(stored_cases(&intake), 0);
    }

    #[test]
    fn a_dry_run_or_a_dropped_import_leaves_nothing() {
        let intake = intake();
        let mut import = intake.begin_import();
        let mut first = chunk("D", 10, 2);
        first.dry_run = true;
        import.add(first).expect("chunk");
        let out = import.finish().expect("answer");
        assert_eq!((out.accepted, out.refused.len()), (0, 0));
        assert_eq!((staged_entries(&intake), stored_cases(&intake)), (0, 0));

        let mut import = intake.begin_import();
        import.add(chunk("D", 10, 2)).expect("chunk");
        assert_eq!(staged_entries(&intake), 10);
        drop(import);
        assert_eq!((staged_entries(&intake), stored_cases(&intake)), (0, 0));
        assert_eq!(*intake.running.borrow(), 0, "no import counted as running");
    }

    #[test]
    fn too_many_rows_end_the_import() {
        let mut intake = intake();
        intake.config.max_import_rows = 15;
        let mut import = intake.begin_import();
        import.add(chunk("L", 10, 2)).expect("chunk");
        let err = import.add(chunk("M", 10, 12)).expect_err("over the limit");
        assert!(matches!(
            err,
            IntakeError::Refused(Refused::TooManyRows { max: 15 })
        ));
        drop(import);
        assert_eq!(staged_entries(&intake), 0);
    }

    #[test]
    fn a_record_written_while_an_import_streams_is_checked_again_at_commit() {
        let intake = intake();
        let mut import = intake.begin_import();
        // Staged as new and in progress ...
        import.add(chunk("R", 3, 2)).expect("chunk");
        // ... then resolved by a unary call before the import ends.
        let resolved = case("R-1", pb::CaseState::Resolved, "2025-03-05");
        intake
            .record_all(crate::intake::Submission {
                cases: vec![(1, resolved)],
                ..Default::default()
            })
            .expect("recorded");
        let out = import.finish().expect("answer");
        assert_eq!(out.accepted, 0, "{out:?}");
        assert_eq!(out.refused.len(), 1, "{out:?}");
        assert_eq!(out.refused[0].line, 3);
        assert!(matches!(
            out.refused[0].violation,
            Violation::BackToInProgress { .. }
        ));
        assert_eq!(stored_cases(&intake), 1);
        assert_eq!(staged_entries(&intake), 0);
    }

    #[test]
    fn a_committed_import_is_applied_at_the_next_start_and_the_rest_removed() {
        let intake = intake();
        // A crash after the commit mark, before the rows were applied.
        let mut committed = intake.begin_import();
        committed.add(chunk("C", 50, 2)).expect("chunk");
        let mut mark = Batch::default();
        mark.put(
            Cf::Meta,
            layout::import_commit_key(committed.id),
            Vec::new(),
        );
        intake.ledger.store().write(mark).expect("mark");
        committed.done = true;
        drop(committed);
        // And an import still streaming.
        let mut streaming = intake.begin_import();
        streaming.add(chunk("S", 20, 2)).expect("chunk");
        streaming.done = true;
        drop(streaming);
        assert!(import_unfinished(intake.ledger.store()).expect("marks"));
        assert_eq!(staged_entries(&intake), 70);

        recover(&intake.ledger).expect("recover");
        assert_eq!(staged_entries(&intake), 0);
        assert_eq!(stored_cases(&intake), 50);
        assert!(
            layout::load_case(intake.ledger.store(), "C-49")
                .expect("load")
                .is_some()
        );
        assert!(
            layout::load_case(intake.ledger.store(), "S-0")
                .expect("load")
                .is_none()
        );
        assert!(!import_unfinished(intake.ledger.store()).expect("marks"));
        // Applying again changes nothing: the rows are there once.
        recover(&intake.ledger).expect("again");
        assert_eq!(stored_cases(&intake), 50);
    }

    #[test]
    fn the_next_intake_call_finishes_an_import_whose_apply_failed() {
        let intake = intake();
        let mut import = intake.begin_import();
        import.add(chunk("F", 5, 2)).expect("chunk");
        let mut mark = Batch::default();
        mark.put(Cf::Meta, layout::import_commit_key(import.id), Vec::new());
        intake.ledger.store().write(mark).expect("mark");
        import.done = true;
        drop(import);
        // A later call for one of its ids: applied after the import, so its
        // change is the one that stays.
        let resolved = case("F-0", pb::CaseState::Resolved, "2025-03-05");
        intake
            .record_all(crate::intake::Submission {
                cases: vec![(1, resolved)],
                ..Default::default()
            })
            .expect("recorded");
        assert!(!import_unfinished(intake.ledger.store()).expect("marks"));
        assert_eq!((stored_cases(&intake), staged_entries(&intake)), (5, 0));
        let f0 = layout::load_case(intake.ledger.store(), "F-0")
            .expect("load")
            .expect("stored");
        assert_eq!(f0.state, tallytree_aggregator::CaseState::Resolved);
    }

    #[test]
    fn a_fingerprint_collision_is_not_a_duplicate() {
        let store = MemStore::new();
        let mut fingerprints = Fingerprints::default();
        // Pretend an earlier chunk staged an id with the fingerprint of "Y".
        assert!(fingerprints.insert("Y"));
        let mut earlier = EarlierChunks::new(&store, 7, StagedKind::Case, &mut fingerprints);
        assert_eq!(earlier.first_line("Y").expect("lookup"), None);
        assert_eq!(earlier.first_line("Z").expect("lookup"), None);
    }
}
