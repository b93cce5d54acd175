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
//!
//! Here: the session, [`Import`] (add a chunk, finish: check again, commit
//! or discard). What is done in the staging column family (stage, read in
//! pages, apply, remove, [`recover`]) is `staging.rs`; finding ids repeated
//! across chunks is `repeats.rs`.

mod repeats;
mod staging;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use prost::Message;
use tallytree_proto::pb;
use tokio::sync::watch;
use tracing::{debug, info, warn};

pub use self::staging::{import_unfinished, recover};
pub(super) use self::{repeats::EarlierChunks, staging::finish_committed};
use self::{
    repeats::Fingerprints,
    staging::{apply_staged, for_each_page, remove_staged, stage, staged_row},
};
use super::{
    Intake, IntakeError, Outcome, Refused, mark_dirty,
    rows::{Cases, Change, Kind, Seen, Tasks, change, check_rows, count, stored_rows},
};
use crate::{
    records::Rules,
    store::{
        Batch, Cf, StoreError,
        layout::{self, StagedKind},
    },
};

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
        let mut batch = Batch::default();
        let no_case = pb::Case::default();
        let cases = chunk
            .cases
            .iter()
            .map(|c| (c.line, c.case.as_ref().unwrap_or(&no_case)));
        self.check_and_stage::<Cases>(cases, chunk.cases.len(), &mut batch)?;
        let no_task = pb::Task::default();
        let tasks = chunk
            .tasks
            .iter()
            .map(|t| (t.line, t.task.as_ref().unwrap_or(&no_task)));
        self.check_and_stage::<Tasks>(tasks, chunk.tasks.len(), &mut batch)?;

        if !batch.is_empty() {
            self.staged = true;
            self.intake.ledger.store().write_unsynced(batch)?;
        }
        crate::faults::kill_point("import-after-chunk");
        debug!(import = self.id, rows = self.rows, "import chunk staged");
        Ok(())
    }

    /// Checks a chunk's `n` rows of one kind (repeats of this chunk and of
    /// the earlier ones included) and adds them to the staging `batch`.
    fn check_and_stage<'a, K: Kind>(
        &'a mut self,
        rows: impl Iterator<Item = (u64, &'a K::Sent)>,
        n: usize,
        batch: &mut Batch,
    ) -> Result<(), StoreError>
    where
        K::Sent: 'a,
    {
        let store = self.intake.ledger.store();
        let fingerprints = match K::STAGED {
            StagedKind::Case => &mut self.case_ids,
            StagedKind::Task => &mut self.task_ids,
        };
        let mut seen = Seen {
            here: HashMap::with_capacity(n),
            earlier: Some(EarlierChunks::new(store, self.id, K::STAGED, fingerprints)),
        };
        for row in check_rows::<K>(store, &self.rules, rows, &mut seen, &mut self.out)? {
            stage(batch, self.id, K::STAGED, row, &mut self.writes);
        }
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
        crate::faults::kill_point("import-after-commit");
        // Committed: whatever happens now, the import is finished, here or at
        // the next start.
        self.done = true;
        apply_staged(store, self.id)?;
        ledger.write_changes(remove_staged(self.id))?;
        ledger.records_written();
        info!(
            rows = self.rows,
            accepted = out.accepted,
            refused = out.refused_count,
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
        for_each_page(store, &prefix, |page| {
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
            Ok(())
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{intake::tests::intake, records::Violation};

    /// A case of March 2025 without a deadline (the default applies).
    pub(super) fn case(id: &str, state: pb::CaseState, closed: &str) -> pb::Case {
        pb::Case {
            deadline: String::new(),
            ..crate::intake::tests::case(id, state, closed)
        }
    }

    /// Records `case` in a unary call, as line 1.
    pub(super) fn record_case(intake: &Intake, case: pb::Case) {
        let sub = crate::intake::Submission {
            cases: vec![(1, case)],
            ..Default::default()
        };
        intake.record_all(sub).expect("recorded");
    }

    /// A chunk of in-progress cases `{prefix}-{i}` on lines from `first_line`.
    pub(super) fn chunk(prefix: &str, n: usize, first_line: u64) -> pb::ImportChunk {
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

    /// Entries in `cf`.
    fn entries(intake: &Intake, cf: Cf) -> usize {
        let mut n = 0;
        let counted = intake.ledger.store().scan(cf, b"", &mut |_, _| {
            n += 1;
            true
        });
        counted.expect("scan");
        n
    }

    pub(super) fn staged_entries(intake: &Intake) -> usize {
        entries(intake, Cf::Staging)
    }

    pub(super) fn stored_cases(intake: &Intake) -> usize {
        entries(intake, Cf::CaseIds)
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
        record_case(&intake, resolved);
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
}
