//! Rows: the stored form of each kind of value (prost messages private to
//! the node), to and from the domain's records.

use chrono::NaiveDate;
use prost::Message;
use tallytree_aggregator::{
    CaseCounts, CaseRecord, CaseState, SummaryView, TaskCounts, TaskRecord, TaskState,
};
use tallytree_proto::{Category, Digest, pb, statement};

use super::keys::DIRECT_TASKS_SLOT;
use crate::store::StoreError;

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

/// A directly entered figure of a month, as stored in its slot of `direct`
/// (a `pb::CaseCounts` per category, a `pb::TaskCounts` in
/// [`DIRECT_TASKS_SLOT`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectRow {
    /// The case counts of a category.
    Cases(Category, CaseCounts),
    /// The task counts.
    Tasks(TaskCounts),
}

impl DirectRow {
    /// Its slot in the month's key.
    pub fn slot(&self) -> u8 {
        match self {
            DirectRow::Cases(category, _) => category.index() as u8,
            DirectRow::Tasks(_) => DIRECT_TASKS_SLOT,
        }
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            DirectRow::Cases(category, n) => pb::CaseCounts {
                category: category.to_pb() as i32,
                registered: n.registered,
                resolved: n.resolved,
                escalated: n.escalated,
                in_progress: n.in_progress,
                resolved_on_time: n.resolved_on_time,
            }
            .encode_to_vec(),
            DirectRow::Tasks(t) => pb::TaskCounts {
                assigned: t.assigned,
                completed: t.completed,
                in_progress: t.in_progress,
                overdue: t.overdue,
            }
            .encode_to_vec(),
        }
    }

    /// Decodes the row stored in `slot`; none for a slot that names no
    /// category known here.
    pub fn decode(slot: u8, bytes: &[u8]) -> Result<Option<DirectRow>, StoreError> {
        if slot == DIRECT_TASKS_SLOT {
            let t: pb::TaskCounts = decode(bytes, "direct")?;
            return Ok(Some(DirectRow::Tasks(TaskCounts::from_pb(&t))));
        }
        let Some(category) = Category::ALL.get(slot as usize) else {
            return Ok(None);
        };
        let row: pb::CaseCounts = decode(bytes, "direct")?;
        Ok(Some(DirectRow::Cases(*category, CaseCounts::from_pb(&row))))
    }
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

impl SummaryRow {
    /// Decodes a stored row.
    pub fn from_bytes(bytes: &[u8]) -> Result<SummaryRow, StoreError> {
        decode(bytes, "summaries")
    }

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

/// Encodes an envelope for storage.
pub fn envelope_bytes(env: &pb::Envelope) -> Vec<u8> {
    env.encode_to_vec()
}

/// Decodes a stored envelope.
pub fn envelope_of(bytes: &[u8], cf: &'static str) -> Result<pb::Envelope, StoreError> {
    decode(bytes, cf)
}

/// Decodes a stored message of `cf`; a failure means the data directory is
/// damaged.
fn decode<M: Message + Default>(bytes: &[u8], cf: &'static str) -> Result<M, StoreError> {
    M::decode(bytes).map_err(|e| StoreError::Corrupt {
        cf,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_direct_row_decodes_from_its_slot() {
        let cases = CaseCounts {
            registered: 4,
            resolved: 2,
            escalated: 1,
            in_progress: 1,
            resolved_on_time: 2,
        };
        let tasks = TaskCounts {
            assigned: 3,
            completed: 1,
            in_progress: 2,
            overdue: 1,
        };
        for row in [
            DirectRow::Cases(Category::ALL[2], cases),
            DirectRow::Tasks(tasks),
        ] {
            let back = DirectRow::decode(row.slot(), &row.encode()).expect("decodes");
            assert_eq!(back, Some(row));
        }
        let unknown = Category::ALL.len() as u8;
        assert_eq!(DirectRow::decode(unknown, &[]).expect("skipped"), None);
    }
}
