//! What the node keeps, and how: the key layout of each column family
//! (`keys.rs`), the row encodings, prost messages private to the node
//! (`rows.rs`), and typed reads (`reads.rs`). Each is re-exported here, so
//! callers name one place: `layout::month_key`, `layout::CaseRow`,
//! `layout::latest_summary`.
//!
//! | cf         | key                                   | value          |
//! |------------|---------------------------------------|----------------|
//! | cases      | month u32 BE, case id                 | [`CaseRow`]    |
//! | case_ids   | case id                               | month u32 BE   |
//! | tasks      | month u32 BE, task id                 | [`TaskRow`]    |
//! | task_ids   | task id                               | month u32 BE   |
//! | direct     | month u32 BE, slot u8 (category, 255 = tasks) | [`DirectRow`]: `CaseCounts` / `TaskCounts` |
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
//! Months are [`Month::index`](tallytree_proto::Month::index); big-endian
//! integers make keys sort by month, region and revision.

mod keys;
mod reads;
mod rows;

pub use keys::*;
pub use reads::*;
pub use rows::*;
