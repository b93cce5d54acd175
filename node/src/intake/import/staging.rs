//! The staging column family: how an import's checked rows are staged,
//! read back page by page, applied to the records once the import has
//! committed (again after a crash: applying a staged row twice is applying
//! it once) and removed; and what a stopped node left there ([`recover`]).

use prost::Message;
use tracing::info;

use crate::{
    intake::rows::{Cases, Change, Checked, Kind, Tasks, write_row},
    ledger::Ledger,
    store::{
        self, Batch, Cf, Entry, Store, StoreError,
        layout::{self, StagedKind, StagedRow},
    },
};

/// Staged rows applied or checked again per page.
const PAGE: usize = 8192;

/// The staged form of a checked row.
pub(super) fn staged_row(line: u64, change: Change, row: Vec<u8>) -> StagedRow {
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
pub(super) fn stage(
    batch: &mut Batch,
    import: u64,
    kind: StagedKind,
    row: Checked<'_>,
    writes: &mut u64,
) {
    *writes += u64::from(matches!(row.change, Change::Write { .. }));
    let staged = staged_row(row.line, row.change, row.row);
    batch.put(
        Cf::Staging,
        layout::staging_key(import, kind, row.id),
        staged.encode_to_vec(),
    );
}

/// Calls `each` on every page of up to [`PAGE`] staged entries under
/// `prefix`, in key order. `each` may write (between pages, never inside
/// a scan).
pub(super) fn for_each_page(
    store: &dyn Store,
    prefix: &[u8],
    mut each: impl FnMut(Vec<Entry>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut from = prefix.to_vec();
    loop {
        let mut page = Vec::with_capacity(PAGE);
        store.scan_from(Cf::Staging, prefix, &from, &mut |k, v| {
            page.push((k.to_vec(), v.to_vec()));
            page.len() < PAGE
        })?;
        // The smallest key after the last one read, if the page is full.
        let next = (page.len() == PAGE).then(|| {
            let mut next = page[PAGE - 1].0.clone();
            next.push(0);
            next
        });
        each(page)?;
        match next {
            Some(next) => from = next,
            None => return Ok(()),
        }
    }
}

/// Applies the staged rows of `import` to the records, in pages, unsynced.
/// Idempotent: after a crash it runs again from the start.
pub(super) fn apply_staged(store: &dyn Store, import: u64) -> Result<(), StoreError> {
    for (kind, cfs) in [
        (StagedKind::Case, (Cases::RECORDS, Cases::IDS)),
        (StagedKind::Task, (Tasks::RECORDS, Tasks::IDS)),
    ] {
        let prefix = layout::staging_kind_prefix(import, kind);
        for_each_page(store, &prefix, |page| {
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
            Ok(())
        })?;
    }
    Ok(())
}

/// The batch that removes an import's staged rows and commit mark.
pub(super) fn remove_staged(import: u64) -> Batch {
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
    let first = store::first_key(store, Cf::Staging, b"")?;
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
pub(in crate::intake) fn finish_committed(ledger: &Ledger) -> Result<(), StoreError> {
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

#[cfg(test)]
mod tests {
    use tallytree_proto::pb;

    use super::*;
    use crate::intake::{
        import::tests::{case, chunk, record_case, staged_entries, stored_cases},
        tests::intake,
    };

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
        record_case(&intake, resolved);
        assert!(!import_unfinished(intake.ledger.store()).expect("marks"));
        assert_eq!((stored_cases(&intake), staged_entries(&intake)), (5, 0));
        let f0 = layout::load_case(intake.ledger.store(), "F-0")
            .expect("load")
            .expect("stored");
        assert_eq!(f0.state, tallytree_aggregator::CaseState::Resolved);
    }
}
