//! What intake answers: the outcome of a submission, each refused row with
//! the rule it breaks, and why input was refused as a whole.

use std::{collections::BTreeSet, fmt};

use tallytree_proto::{Month, pb};

use crate::{records::Violation, store::StoreError};

/// Most refused rows quoted in the message of a refused unary call.
const QUOTED_REFUSALS: usize = 10;

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

/// Refused rows an outcome lists; beyond them it only counts. A file of
/// the wrong kind refuses every row, and neither the node's memory nor the
/// answer may grow with it.
pub const LISTED_REFUSALS: usize = 1_000;

/// What happened to a submission.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// Rows durably stored (unchanged rows included).
    pub accepted: u64,
    /// Rows refused, by line: the first [`LISTED_REFUSALS`] of them.
    pub refused: Vec<RowRefusal>,
    /// Every row refused, listed or not.
    pub refused_count: u64,
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
            refused_count: self.refused_count,
        }
    }

    /// Records a refused row: listed while fewer than [`LISTED_REFUSALS`]
    /// are, counted always. Rows arrive in line order, so the list holds the
    /// first lines refused.
    pub(super) fn refuse(&mut self, kind: RowKind, line: u64, id: &str, violation: Violation) {
        self.refused_count += 1;
        if self.refused.len() < LISTED_REFUSALS {
            self.refused.push(RowRefusal {
                kind,
                line,
                id: id.to_owned(),
                violation,
            });
        }
    }

    /// The outcome once the rows are refused whole or only checked:
    /// nothing stored, the refusals by line.
    pub(super) fn nothing_stored(mut self) -> Outcome {
        self.refused.sort_by_key(|r| r.line);
        Outcome {
            accepted: 0,
            refused: self.refused,
            refused_count: self.refused_count,
            months_changed: BTreeSet::new(),
        }
    }
}

/// Why input was refused as a whole. Nothing was stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    /// Rows of an all-or-nothing call break rules.
    #[error("{}", rows_message(refused, *count, *rows))]
    Rows {
        /// The refused rows, by line (the first of them).
        refused: Vec<RowRefusal>,
        /// Every row refused.
        count: u64,
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
fn rows_message(refused: &[RowRefusal], count: u64, rows: usize) -> String {
    let mut msg = format!("{count} of {rows} rows refused, nothing stored");
    let quoted = refused.iter().take(QUOTED_REFUSALS);
    for (i, r) in quoted.clone().enumerate() {
        msg.push_str(if i == 0 { ": " } else { "; " });
        msg.push_str(&r.to_string());
    }
    let more = count.saturating_sub(quoted.count() as u64);
    if more > 0 {
        msg.push_str(&format!("; and {more} more"));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_call_quotes_the_first_rows_and_counts_the_rest() {
        let refused: Vec<RowRefusal> = (0..QUOTED_REFUSALS as u64 + 2)
            .map(|i| RowRefusal {
                kind: RowKind::Tasks,
                line: i + 2,
                id: String::new(),
                violation: Violation::NothingToRecord,
            })
            .collect();
        let count = refused.len() as u64;
        let msg = Refused::Rows {
            refused,
            count,
            rows: 40,
        }
        .to_string();
        assert!(
            msg.starts_with("12 of 40 rows refused, nothing stored: tasks line 2: "),
            "{msg}"
        );
        assert!(msg.contains("tasks line 11: "), "{msg}");
        assert!(!msg.contains("tasks line 12: "), "{msg}");
        assert!(msg.ends_with("; and 2 more"), "{msg}");
    }

    /// A file of the wrong kind refuses every row: the outcome lists the
    /// first rows and counts all of them, whatever the file's length.
    #[test]
    fn an_outcome_lists_the_first_refusals_and_counts_every_one() {
        let mut out = Outcome::default();
        let rows = LISTED_REFUSALS as u64 * 3;
        for line in 1..=rows {
            out.refuse(RowKind::Cases, line, "X", Violation::NothingToRecord);
        }
        assert_eq!(out.refused.len(), LISTED_REFUSALS);
        assert_eq!(out.refused_count, rows);
        assert_eq!(
            out.refused.last().map(|r| r.line),
            Some(LISTED_REFUSALS as u64)
        );
        let wire = out.to_pb();
        assert_eq!(
            (wire.refused.len(), wire.refused_count),
            (LISTED_REFUSALS, rows)
        );
    }
}
