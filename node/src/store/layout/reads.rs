//! Typed reads: records, summaries, marks and statements as the node's
//! parts use them, each a lookup or a scan by the keys of `keys.rs`
//! decoded into the rows of `rows.rs`.

use std::collections::BTreeSet;

use tallytree_aggregator::{CaseRecord, TaskRecord};
use tallytree_proto::{Month, RegionCode, pb};

use super::{
    keys::{
        meta, month_key, month_of_key, record_key, staging_import, summary_key, summary_prefix,
    },
    rows::{CaseRow, DirectRow, SummaryRow, TaskRow, envelope_of},
};
use crate::store::{Cf, Store, StoreError, collect, try_scan};

/// The month a case id is stored under, if any.
pub fn case_month(store: &dyn Store, id: &str) -> Result<Option<Month>, StoreError> {
    month_of_id(store, Cf::CaseIds, id)
}

/// A stored case by id.
pub fn load_case(store: &dyn Store, id: &str) -> Result<Option<CaseRecord>, StoreError> {
    record_of_id(store, (Cf::Cases, Cf::CaseIds), id)?
        .map(|b| CaseRow::from_bytes(&b)?.to_record())
        .transpose()
}

/// The month `id` is stored under in `ids` (`case_ids`, `task_ids`).
fn month_of_id(store: &dyn Store, ids: Cf, id: &str) -> Result<Option<Month>, StoreError> {
    store
        .get(ids, id.as_bytes())?
        .map(|b| month_of_key(&b, ids.name()))
        .transpose()
}

/// The stored row of `id` in `records`, found through its month in `ids`.
fn record_of_id(
    store: &dyn Store,
    (records, ids): (Cf, Cf),
    id: &str,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(month) = month_of_id(store, ids, id)? else {
        return Ok(None);
    };
    store.get(records, &record_key(month, id))
}

/// Calls `visit` on each case of `month`, in id order, one at a time (a
/// month may hold millions).
pub fn for_each_case(
    store: &dyn Store,
    month: Month,
    mut visit: impl FnMut(CaseRecord),
) -> Result<(), StoreError> {
    try_scan(store, Cf::Cases, &month_key(month), |_, v| {
        visit(CaseRow::from_bytes(v)?.to_record()?);
        Ok(())
    })
}

/// Calls `visit` on each case of `month` with its id, in id order.
pub fn for_each_case_with_id(
    store: &dyn Store,
    month: Month,
    mut visit: impl FnMut(&str, CaseRecord),
) -> Result<(), StoreError> {
    let prefix = month_key(month);
    try_scan(store, Cf::Cases, &prefix, |k, v| {
        let id = String::from_utf8_lossy(&k[prefix.len()..]);
        visit(&id, CaseRow::from_bytes(v)?.to_record()?);
        Ok(())
    })
}

/// Calls `visit` on each task due in `month`, in id order, one at a time.
pub fn for_each_task(
    store: &dyn Store,
    month: Month,
    mut visit: impl FnMut(TaskRecord),
) -> Result<(), StoreError> {
    try_scan(store, Cf::Tasks, &month_key(month), |_, v| {
        visit(TaskRow::from_bytes(v)?.to_record()?);
        Ok(())
    })
}

/// The directly entered figures of a month, by slot.
pub fn direct_rows(store: &dyn Store, month: Month) -> Result<Vec<DirectRow>, StoreError> {
    let mut rows = Vec::new();
    try_scan(store, Cf::Direct, &month_key(month), |k, v| {
        let slot = k.get(4).copied().unwrap_or(0);
        rows.extend(DirectRow::decode(slot, v)?);
        Ok(())
    })?;
    Ok(rows)
}

/// Every month with a task due in it.
pub fn task_months(store: &dyn Store) -> Result<BTreeSet<Month>, StoreError> {
    let mut months = BTreeSet::new();
    try_scan(store, Cf::TaskIds, b"", |_, v| {
        months.insert(month_of_key(v, "task_ids")?);
        Ok(())
    })?;
    Ok(months)
}

/// The latest stored summary of a region for a month.
pub fn latest_summary(
    store: &dyn Store,
    region: RegionCode,
    month: Month,
) -> Result<Option<SummaryRow>, StoreError> {
    store
        .last(Cf::Summaries, &summary_prefix(region, month))?
        .map(|(_, v)| SummaryRow::from_bytes(&v))
        .transpose()
}

/// One stored revision of a region's summary.
pub fn summary_at(
    store: &dyn Store,
    region: RegionCode,
    month: Month,
    revision: u64,
) -> Result<Option<SummaryRow>, StoreError> {
    store
        .get(Cf::Summaries, &summary_key(region, month, revision))?
        .map(|b| SummaryRow::from_bytes(&b))
        .transpose()
}

/// Every stored revision of a region's summary for a month, oldest first.
pub fn summary_revisions(
    store: &dyn Store,
    region: RegionCode,
    month: Month,
) -> Result<Vec<SummaryRow>, StoreError> {
    collect(
        store,
        Cf::Summaries,
        &summary_prefix(region, month),
        |_, v| SummaryRow::from_bytes(v),
    )
}

/// Months marked as changed and not yet signed.
pub fn dirty_months(store: &dyn Store) -> Result<Vec<Month>, StoreError> {
    collect(store, Cf::Dirty, b"", |k, _| month_of_key(k, "dirty"))
}

/// Imports committed and not yet fully applied, by id.
pub fn committed_imports(store: &dyn Store) -> Result<Vec<u64>, StoreError> {
    collect(store, Cf::Meta, meta::IMPORT_COMMITTED, |k, _| {
        staging_import(&k[meta::IMPORT_COMMITTED.len()..])
    })
}

/// Every envelope stored in `cf` under `prefix`, in key order.
pub fn envelopes(
    store: &dyn Store,
    cf: Cf,
    prefix: &[u8],
) -> Result<Vec<pb::Envelope>, StoreError> {
    collect(store, cf, prefix, |_, v| envelope_of(v, cf.name()))
}

/// The outbox: months and the revision waiting to be pushed.
pub fn outbox(store: &dyn Store) -> Result<Vec<(Month, u64)>, StoreError> {
    collect(store, Cf::Outbox, b"", |k, v| {
        let month = month_of_key(k, "outbox")?;
        let revision = v
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt {
                cf: "outbox",
                reason: "revision is not 8 bytes".into(),
            })?;
        Ok((month, revision))
    })
}
