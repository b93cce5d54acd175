//! What the node keeps, and how: the key layout of each column family, the
//! row encodings (prost messages private to the node), and typed reads.
//!
//! | cf         | key                                   | value          |
//! |------------|---------------------------------------|----------------|
//! | cases      | month u32 BE, case id                 | [`CaseRow`]    |
//! | case_ids   | case id                               | month u32 BE   |
//! | tasks      | month u32 BE, task id                 | [`TaskRow`]    |
//! | task_ids   | task id                               | month u32 BE   |
//! | direct     | month u32 BE, slot u8 (category, 255 = tasks) | `CaseCounts` / `TaskCounts` |
//! | summaries  | region u64 BE, month u32 BE, revision u64 BE | [`SummaryRow`] |
//! | dirty      | month u32 BE                          | empty          |
//! | enrolments | region u64 BE, serial u64 BE          | `Envelope`     |
//! | revocations| region u64 BE, key id (32 bytes)      | `Envelope`     |
//! | receipts   | month u32 BE, revision u64 BE         | `Envelope` (from the parent) |
//! | outbox     | month u32 BE                          | revision u64 BE |
//! | forwarded  | payload digest (32 bytes)             | empty          |
//! | evidence   | region u64 BE, month u32 BE, digest   | `Envelope`     |
//! | meta       | name (see [`meta`])                   | varies         |
//! | staging    | import id u64 BE, kind u8 (1 case, 2 task), record id | [`StagedRow`] |
//!
//! Months are [`Month::index`]; big-endian integers make keys sort by month,
//! region and revision.

use chrono::NaiveDate;
use prost::Message;
use tallytree_aggregator::{
    CaseCounts, CaseRecord, CaseState, SummaryView, Tally, TaskCounts, TaskRecord, TaskState,
};
use tallytree_proto::{Category, Digest, Month, RegionCode, pb, statement};

use super::{Cf, Store, StoreError};

/// Slot of the task counts in the direct column family.
pub const DIRECT_TASKS_SLOT: u8 = u8::MAX;

/// A stored case.
#[derive(Clone, PartialEq, Message)]
pub struct CaseRow {
    /// Category index ([`Category::index`]).
    #[prost(uint32, tag = "1")]
    pub category: u32,
    /// Days since 0001-01-01 (CE).
    #[prost(int32, tag = "2")]
    pub registered_on: i32,
    /// 0 in progress, 1 resolved, 2 escalated.
    #[prost(uint32, tag = "3")]
    pub state: u32,
    /// Days since CE, when closed.
    #[prost(int32, optional, tag = "4")]
    pub closed_on: Option<i32>,
    /// Days since CE.
    #[prost(int32, tag = "5")]
    pub deadline: i32,
}

/// A stored task.
#[derive(Clone, PartialEq, Message)]
pub struct TaskRow {
    /// The task's title as given.
    #[prost(string, tag = "1")]
    pub title: String,
    /// Days since CE.
    #[prost(int32, tag = "2")]
    pub deadline: i32,
    /// 0 in progress, 1 completed.
    #[prost(uint32, tag = "3")]
    pub state: u32,
}

/// A stored signed summary, with what the node knows about it.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryRow {
    /// The envelope exactly as signed or received.
    #[prost(message, optional, tag = "1")]
    pub envelope: Option<pb::Envelope>,
    /// When this node signed or received it (Unix ms).
    #[prost(int64, tag = "2")]
    pub received_at_ms: i64,
    /// Signature and arithmetic checked when stored.
    #[prost(bool, tag = "3")]
    pub verified: bool,
}

/// A row of a bulk import, checked and waiting for the import to commit.
#[derive(Clone, PartialEq, Message)]
pub struct StagedRow {
    /// The caller's line number, to name it when the id comes again.
    #[prost(uint64, tag = "1")]
    pub line: u64,
    /// The encoded [`CaseRow`] or [`TaskRow`]; empty when the row was
    /// refused (kept only to find later duplicates of its id).
    #[prost(bytes = "vec", tag = "2")]
    pub row: Vec<u8>,
    /// The month the row is stored under, when storing it changes something
    /// (absent: unchanged or refused).
    #[prost(uint32, optional, tag = "3")]
    pub month: Option<u32>,
    /// The month it is stored under now, when it moves to another.
    #[prost(uint32, optional, tag = "4")]
    pub moved_from: Option<u32>,
}

/// What a staging key holds after the import id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum StagedKind {
    /// A case, by id.
    Case = 1,
    /// A task, by id.
    Task = 2,
}

/// Key prefix of everything staged for `import`.
pub fn staging_prefix(import: u64) -> [u8; 8] {
    import.to_be_bytes()
}

/// Key prefix of the staged rows of one kind.
pub fn staging_kind_prefix(import: u64, kind: StagedKind) -> [u8; 9] {
    let mut k = [0; 9];
    k[..8].copy_from_slice(&import.to_be_bytes());
    k[8] = kind as u8;
    k
}

/// Key of a staged row.
pub fn staging_key(import: u64, kind: StagedKind, id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + id.len());
    k.extend_from_slice(&staging_kind_prefix(import, kind));
    k.extend_from_slice(id.as_bytes());
    k
}

/// The import id a staging key (or a commit mark's suffix) belongs to.
pub fn staging_import(key: &[u8]) -> Result<u64, StoreError> {
    key.get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt {
            cf: "staging",
            reason: "short key".into(),
        })
}

/// Decodes a staged row.
pub fn staged_row(bytes: &[u8]) -> Result<StagedRow, StoreError> {
    decode(bytes, "staging")
}

/// Days since CE of a date.
pub fn day_number(d: NaiveDate) -> i32 {
    use chrono::Datelike;
    d.num_days_from_ce()
}

fn date_of(days: i32, cf: &'static str) -> Result<NaiveDate, StoreError> {
    NaiveDate::from_num_days_from_ce_opt(days).ok_or_else(|| StoreError::Corrupt {
        cf,
        reason: format!("day number {days} out of range"),
    })
}

impl CaseRow {
    /// From a record.
    pub fn from_record(r: &CaseRecord) -> CaseRow {
        CaseRow {
            category: r.category.index() as u32,
            registered_on: day_number(r.registered_on),
            state: match r.state {
                CaseState::InProgress => 0,
                CaseState::Resolved => 1,
                CaseState::Escalated => 2,
            },
            closed_on: r.closed_on.map(day_number),
            deadline: day_number(r.deadline),
        }
    }

    /// Decodes a stored row.
    pub fn from_bytes(bytes: &[u8]) -> Result<CaseRow, StoreError> {
        decode(bytes, "cases")
    }

    /// Back to a record.
    pub fn to_record(&self) -> Result<CaseRecord, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt {
            cf: "cases",
            reason: reason.to_owned(),
        };
        Ok(CaseRecord {
            category: *Category::ALL
                .get(self.category as usize)
                .ok_or_else(|| corrupt("category out of range"))?,
            registered_on: date_of(self.registered_on, "cases")?,
            state: match self.state {
                0 => CaseState::InProgress,
                1 => CaseState::Resolved,
                2 => CaseState::Escalated,
                _ => return Err(corrupt("state out of range")),
            },
            closed_on: self.closed_on.map(|d| date_of(d, "cases")).transpose()?,
            deadline: date_of(self.deadline, "cases")?,
        })
    }
}

impl TaskRow {
    /// From a record and its title.
    pub fn from_record(r: &TaskRecord, title: &str) -> TaskRow {
        TaskRow {
            title: title.to_owned(),
            deadline: day_number(r.deadline),
            state: match r.state {
                TaskState::InProgress => 0,
                TaskState::Completed => 1,
            },
        }
    }

    /// Decodes a stored row.
    pub fn from_bytes(bytes: &[u8]) -> Result<TaskRow, StoreError> {
        decode(bytes, "tasks")
    }

    /// Back to a record.
    pub fn to_record(&self) -> Result<TaskRecord, StoreError> {
        Ok(TaskRecord {
            deadline: date_of(self.deadline, "tasks")?,
            state: match self.state {
                0 => TaskState::InProgress,
                1 => TaskState::Completed,
                _ => {
                    return Err(StoreError::Corrupt {
                        cf: "tasks",
                        reason: "state out of range".into(),
                    });
                }
            },
        })
    }
}

/// Key of a record (case or task) in its month.
pub fn record_key(month: Month, id: &str) -> Vec<u8> {
    let mut k = month.index().to_be_bytes().to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// Key prefix of a month.
pub fn month_key(month: Month) -> [u8; 4] {
    month.index().to_be_bytes()
}

/// The month of a stored month index.
pub fn month_of_index(index: u32, cf: &'static str) -> Result<Month, StoreError> {
    Month::from_index(index).ok_or_else(|| StoreError::Corrupt {
        cf,
        reason: "month out of range".into(),
    })
}

/// Decodes a month key.
pub fn month_of_key(bytes: &[u8], cf: &'static str) -> Result<Month, StoreError> {
    let raw: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt {
            cf,
            reason: "short month key".into(),
        })?;
    Month::from_index(u32::from_be_bytes(raw)).ok_or_else(|| StoreError::Corrupt {
        cf,
        reason: "month out of range".into(),
    })
}

/// Key of a direct-tally slot.
pub fn direct_key(month: Month, slot: u8) -> Vec<u8> {
    let mut k = month_key(month).to_vec();
    k.push(slot);
    k
}

/// Key prefix of a region's summaries for a month.
pub fn summary_prefix(region: RegionCode, month: Month) -> Vec<u8> {
    let mut k = region.as_u64().to_be_bytes().to_vec();
    k.extend_from_slice(&month_key(month));
    k
}

/// Key of one summary revision.
pub fn summary_key(region: RegionCode, month: Month, revision: u64) -> Vec<u8> {
    let mut k = summary_prefix(region, month);
    k.extend_from_slice(&revision.to_be_bytes());
    k
}

fn decode<M: Message + Default>(bytes: &[u8], cf: &'static str) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|e| StoreError::Corrupt {
        cf,
        reason: e.to_string(),
    })
}

/// The month a case id is stored under, if any.
pub fn case_month(store: &dyn Store, id: &str) -> Result<Option<Month>, StoreError> {
    store
        .get(Cf::CaseIds, id.as_bytes())?
        .map(|b| month_of_key(&b, "case_ids"))
        .transpose()
}

/// A stored case by id.
pub fn load_case(store: &dyn Store, id: &str) -> Result<Option<CaseRecord>, StoreError> {
    let Some(month) = case_month(store, id)? else {
        return Ok(None);
    };
    store
        .get(Cf::Cases, &record_key(month, id))?
        .map(|b| decode::<CaseRow>(&b, "cases")?.to_record())
        .transpose()
}

/// The month a task id is stored under, if any.
pub fn task_month(store: &dyn Store, id: &str) -> Result<Option<Month>, StoreError> {
    store
        .get(Cf::TaskIds, id.as_bytes())?
        .map(|b| month_of_key(&b, "task_ids"))
        .transpose()
}

/// A stored task by id.
pub fn load_task(store: &dyn Store, id: &str) -> Result<Option<TaskRow>, StoreError> {
    let Some(month) = task_month(store, id)? else {
        return Ok(None);
    };
    store
        .get(Cf::Tasks, &record_key(month, id))?
        .map(|b| decode::<TaskRow>(&b, "tasks"))
        .transpose()
}

/// The local tally of a month as of `today`: its cases, its tasks and its
/// directly entered figures.
pub fn local_tally(store: &dyn Store, month: Month, today: NaiveDate) -> Result<Tally, StoreError> {
    let prefix = month_key(month);
    let mut tally = Tally::default();
    let mut failure = None;
    store.scan(Cf::Cases, &prefix, &mut |_, v| {
        match decode::<CaseRow>(v, "cases").and_then(|r| r.to_record()) {
            Ok(case) => tally.count_case(&case),
            Err(e) => failure = Some(e),
        }
        failure.is_none()
    })?;
    store.scan(Cf::Tasks, &prefix, &mut |_, v| {
        match decode::<TaskRow>(v, "tasks").and_then(|r| r.to_record()) {
            Ok(task) => tally.count_task(&task, today),
            Err(e) => failure = Some(e),
        }
        failure.is_none()
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    let direct = direct_tally(store, month)?;
    tally
        .checked_add(&direct)
        .ok_or_else(|| StoreError::Corrupt {
            cf: "direct",
            reason: format!("month {month}: counts overflow"),
        })
}

/// The directly entered figures of a month.
pub fn direct_tally(store: &dyn Store, month: Month) -> Result<Tally, StoreError> {
    let mut tally = Tally::default();
    let mut failure = None;
    store.scan(Cf::Direct, &month_key(month), &mut |k, v| {
        let slot = k.get(4).copied().unwrap_or(0);
        if slot == DIRECT_TASKS_SLOT {
            match decode::<pb::TaskCounts>(v, "direct") {
                Ok(t) => tally.tasks = TaskCounts::from_pb(&t),
                Err(e) => failure = Some(e),
            }
        } else if let Some(c) = Category::ALL.get(slot as usize) {
            match decode::<pb::CaseCounts>(v, "direct") {
                Ok(row) => *tally.category_mut(*c) = CaseCounts::from_pb(&row),
                Err(e) => failure = Some(e),
            }
        }
        failure.is_none()
    })?;
    failure.map_or(Ok(tally), Err)
}

/// The latest stored summary of a region for a month.
pub fn latest_summary(
    store: &dyn Store,
    region: RegionCode,
    month: Month,
) -> Result<Option<SummaryRow>, StoreError> {
    store
        .last(Cf::Summaries, &summary_prefix(region, month))?
        .map(|(_, v)| decode::<SummaryRow>(&v, "summaries"))
        .transpose()
}

/// Every stored revision of a region's summary for a month, oldest first.
pub fn summary_revisions(
    store: &dyn Store,
    region: RegionCode,
    month: Month,
) -> Result<Vec<SummaryRow>, StoreError> {
    let mut rows = Vec::new();
    let mut failure = None;
    store.scan(
        Cf::Summaries,
        &summary_prefix(region, month),
        &mut |_, v| {
            match decode::<SummaryRow>(v, "summaries") {
                Ok(r) => rows.push(r),
                Err(e) => failure = Some(e),
            }
            failure.is_none()
        },
    )?;
    failure.map_or(Ok(rows), Err)
}

/// Months marked as changed and not yet signed.
pub fn dirty_months(store: &dyn Store) -> Result<Vec<Month>, StoreError> {
    let mut months = Vec::new();
    let mut failure = None;
    store.scan(Cf::Dirty, b"", &mut |k, _| {
        match month_of_key(k, "dirty") {
            Ok(m) => months.push(m),
            Err(e) => failure = Some(e),
        }
        failure.is_none()
    })?;
    failure.map_or(Ok(months), Err)
}

impl SummaryRow {
    /// The stored envelope.
    pub fn envelope(&self) -> Result<&pb::Envelope, StoreError> {
        self.envelope.as_ref().ok_or_else(|| StoreError::Corrupt {
            cf: "summaries",
            reason: "row without envelope".into(),
        })
    }

    /// Decodes the stored summary. Rows are checked before they are stored,
    /// so a failure here means the data directory is damaged.
    pub fn view(&self) -> Result<SummaryView, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            cf: "summaries",
            reason,
        };
        let summary: pb::Summary =
            statement::decode_stored(self.envelope()?).map_err(|e| corrupt(e.to_string()))?;
        SummaryView::from_pb(&summary).map_err(|e| corrupt(e.to_string()))
    }

    /// SHA-256 of the stored payload.
    pub fn digest(&self) -> Result<Digest, StoreError> {
        Ok(Digest::of(&self.envelope()?.payload))
    }
}

/// The encoded [`SummaryRow`] of a verified summary received (or signed) at
/// `received_at_ms`, encoded from the borrowed envelope: the same bytes as
/// encoding the row, without copying the envelope into one first.
pub fn summary_row_bytes(env: &pb::Envelope, received_at_ms: i64) -> Vec<u8> {
    use prost::encoding;
    let mut buf = Vec::with_capacity(env.encoded_len() + 16);
    encoding::message::encode(1, env, &mut buf);
    if received_at_ms != 0 {
        encoding::int64::encode(2, &received_at_ms, &mut buf);
    }
    encoding::bool::encode(3, &true, &mut buf);
    buf
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
        .map(|b| decode::<SummaryRow>(&b, "summaries"))
        .transpose()
}

/// Names of single values in the meta column family.
pub mod meta {
    /// Prefix of the enrolments of this node installed from its parent
    /// (followed by the serial, u64 BE); value: `Envelope`.
    pub const OWN_ENROLMENT: &[u8] = b"own_enrolment/";
    /// The parent's raw 32-byte public key.
    pub const PARENT_KEY: &[u8] = b"parent_key";
    /// Prefix of the commit marks of bulk imports (followed by the import
    /// id, u64 BE); value empty. A mark means: the import is decided, its
    /// rows in staging are to be applied (again, after a crash).
    pub const IMPORT_COMMITTED: &[u8] = b"import_committed/";
}

/// Key of the commit mark of an import.
pub fn import_commit_key(import: u64) -> Vec<u8> {
    let mut k = meta::IMPORT_COMMITTED.to_vec();
    k.extend_from_slice(&import.to_be_bytes());
    k
}

/// Imports committed and not yet fully applied, by id.
pub fn committed_imports(store: &dyn Store) -> Result<Vec<u64>, StoreError> {
    let mut ids = Vec::new();
    let mut failure = None;
    store.scan(Cf::Meta, meta::IMPORT_COMMITTED, &mut |k, _| {
        match staging_import(&k[meta::IMPORT_COMMITTED.len()..]) {
            Ok(id) => ids.push(id),
            Err(e) => failure = Some(e),
        }
        failure.is_none()
    })?;
    failure.map_or(Ok(ids), Err)
}

/// Encodes an envelope for storage.
pub fn envelope_bytes(env: &pb::Envelope) -> Vec<u8> {
    env.encode_to_vec()
}

/// Decodes a stored envelope.
pub fn envelope_of(bytes: &[u8], cf: &'static str) -> Result<pb::Envelope, StoreError> {
    decode(bytes, cf)
}

/// Every envelope stored in `cf` under `prefix`, in key order.
pub fn envelopes(
    store: &dyn Store,
    cf: Cf,
    prefix: &[u8],
) -> Result<Vec<pb::Envelope>, StoreError> {
    let mut out = Vec::new();
    let mut failure = None;
    store.scan(cf, prefix, &mut |_, v| {
        match decode::<pb::Envelope>(v, cf.name()) {
            Ok(e) => out.push(e),
            Err(e) => failure = Some(e),
        }
        failure.is_none()
    })?;
    failure.map_or(Ok(out), Err)
}

/// Key of an enrolment.
pub fn enrolment_key(region: RegionCode, serial: u64) -> Vec<u8> {
    let mut k = region.as_u64().to_be_bytes().to_vec();
    k.extend_from_slice(&serial.to_be_bytes());
    k
}

/// Key of a revocation.
pub fn revocation_key(region: RegionCode, key: &tallytree_proto::PublicKey) -> Vec<u8> {
    let mut k = region.as_u64().to_be_bytes().to_vec();
    k.extend_from_slice(Digest::of(&key.0).as_ref());
    k
}

/// Key of a receipt from the parent.
pub fn receipt_key(month: Month, revision: u64) -> Vec<u8> {
    let mut k = month_key(month).to_vec();
    k.extend_from_slice(&revision.to_be_bytes());
    k
}

/// Key of an equivocation record.
pub fn evidence_key(region: RegionCode, month: Month, digest: &Digest) -> Vec<u8> {
    let mut k = summary_prefix(region, month);
    k.extend_from_slice(digest.as_ref());
    k
}

/// The outbox: months and the revision waiting to be pushed.
pub fn outbox(store: &dyn Store) -> Result<Vec<(Month, u64)>, StoreError> {
    let mut out = Vec::new();
    let mut failure = None;
    store.scan(Cf::Outbox, b"", &mut |k, v| {
        let revision = v.try_into().map(u64::from_be_bytes);
        match (month_of_key(k, "outbox"), revision) {
            (Ok(m), Ok(r)) => out.push((m, r)),
            (Err(e), _) => failure = Some(e),
            (_, Err(_)) => {
                failure = Some(StoreError::Corrupt {
                    cf: "outbox",
                    reason: "revision is not 8 bytes".into(),
                })
            }
        }
        failure.is_none()
    })?;
    failure.map_or(Ok(out), Err)
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use tallytree_proto::pb;

    use super::{SummaryRow, summary_row_bytes};

    #[test]
    fn summary_row_bytes_are_the_rows_encoding() {
        let env = pb::Envelope {
            payload: vec![1, 2, 3],
            payload_type: "application/vnd.tallytree.summary+protobuf".into(),
            signatures: vec![pb::Signature {
                keyid: "ab".repeat(32),
                sig: vec![7; 64],
            }],
        };
        for received_at_ms in [0, 1, 1_790_000_000_000, -5] {
            let row = SummaryRow {
                envelope: Some(env.clone()),
                received_at_ms,
                verified: true,
            };
            assert_eq!(summary_row_bytes(&env, received_at_ms), row.encode_to_vec());
        }
    }
}
