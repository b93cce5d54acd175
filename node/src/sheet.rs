//! Reading case and task spreadsheets (UTF-8 CSV with a header row) into
//! protocol records. Headers and values may be English codes or the Chinese
//! words offices use (编号, 类别, 登记日期, 在办, 已化解 ...).

use std::io::Read;

use tallytree_proto::{Category, pb};

/// Why a sheet cannot be read at all (rows that break a rule are
/// [`Refused`], one by one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SheetError {
    /// The header names an unknown column or lacks a required one.
    #[error("line 1: {0}")]
    Header(String),
    /// The file is not CSV (or not UTF-8) at some line.
    #[error("{0}")]
    Csv(String),
}

type Result<T, E = SheetError> = std::result::Result<T, E>;

/// Which records a sheet holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Dispute cases: id, category, registered_on, state, closed_on, deadline.
    Cases,
    /// Governance tasks: id, title, deadline, state.
    Tasks,
}

/// A parsed row.
#[derive(Debug, Clone, PartialEq)]
pub enum Row {
    /// A case.
    Case(pb::Case),
    /// A task.
    Task(pb::Task),
}

/// A row the CLI refuses before sending.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// Line in the file (the header is line 1).
    pub line: u64,
    /// Record id, if read.
    pub id: String,
    /// Field and rule.
    pub reason: String,
}

const CASE_COLUMNS: [(&str, &[&str], bool); 6] = [
    ("id", &["编号", "案件编号"], true),
    ("category", &["类别", "纠纷类别"], true),
    ("registered_on", &["登记日期", "排查日期"], true),
    ("state", &["状态"], true),
    ("closed_on", &["办结日期", "化解日期"], false),
    ("deadline", &["期限", "办理期限"], false),
];

const TASK_COLUMNS: [(&str, &[&str], bool); 4] = [
    ("id", &["编号", "任务编号"], true),
    ("title", &["任务", "标题", "任务名称"], true),
    ("deadline", &["期限", "截止日期"], true),
    ("state", &["状态"], true),
];

/// Reads a sheet: header first, then rows, each parsed or refused.
pub struct Sheet<R: Read> {
    /// The CSV reader.
    reader: csv::Reader<R>,
    /// Column index of each field, by the kind's column order.
    columns: Vec<Option<usize>>,
    /// What the rows are.
    kind: Kind,
}

fn columns_of(kind: Kind) -> &'static [(&'static str, &'static [&'static str], bool)] {
    match kind {
        Kind::Cases => &CASE_COLUMNS,
        Kind::Tasks => &TASK_COLUMNS,
    }
}

impl Kind {
    /// "cases" or "tasks".
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cases => "cases",
            Kind::Tasks => "tasks",
        }
    }
}

impl<R: Read> Sheet<R> {
    /// Opens a sheet and checks its header.
    pub fn new(input: R, kind: Kind) -> Result<Sheet<R>> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(false)
            .from_reader(input);
        let header = reader
            .headers()
            .map_err(|e| SheetError::Header(format!("cannot read the header ({e})")))?
            .clone();
        let spec = columns_of(kind);
        let mut columns = vec![None; spec.len()];
        for (i, name) in header.iter().enumerate() {
            let name = name.trim_start_matches('\u{feff}');
            let Some(field) = spec
                .iter()
                .position(|(code, aliases, _)| *code == name || aliases.contains(&name))
            else {
                let expected: Vec<&str> = spec.iter().map(|(c, _, _)| *c).collect();
                return Err(SheetError::Header(format!(
                    "unknown column {name:?} (expected {})",
                    expected.join(", ")
                )));
            };
            columns[field] = Some(i);
        }
        for (field, (code, _, required)) in spec.iter().enumerate() {
            if *required && columns[field].is_none() {
                return Err(SheetError::Header(format!(
                    "required column {code:?} missing"
                )));
            }
        }
        Ok(Sheet {
            reader,
            columns,
            kind,
        })
    }

    /// Bytes read so far, for progress.
    pub fn position(&self) -> u64 {
        self.reader.position().byte()
    }

    /// The next row, `None` at the end. A malformed CSV line is an error.
    pub fn next_row(&mut self) -> Option<Result<Result<(u64, Row), Refused>>> {
        let mut record = csv::StringRecord::new();
        match self.reader.read_record(&mut record) {
            Ok(false) => None,
            Err(e) => Some(Err(SheetError::Csv(e.to_string()))),
            Ok(true) => {
                let line = record.position().map_or(0, |p| p.line());
                let get = |field: usize| {
                    self.columns[field]
                        .and_then(|i| record.get(i))
                        .unwrap_or_default()
                        .to_owned()
                };
                let parsed = match self.kind {
                    Kind::Cases => {
                        parse_case(get(0), &get(1), get(2), &get(3), get(4), get(5)).map(Row::Case)
                    }
                    Kind::Tasks => parse_task(get(0), get(1), get(2), &get(3)).map(Row::Task),
                };
                Some(Ok(parsed
                    .map(|row| (line, row))
                    .map_err(|(id, reason)| Refused { line, id, reason })))
            }
        }
    }
}

fn parse_case(
    id: String,
    category: &str,
    registered_on: String,
    state: &str,
    closed_on: String,
    deadline: String,
) -> Result<pb::Case, (String, String)> {
    let Some(c) = Category::parse(category) else {
        let known: Vec<&str> = Category::ALL.iter().map(|c| c.label()).collect();
        return Err((
            id,
            format!(
                "category ({category}): unknown category (one of {})",
                known.join(", ")
            ),
        ));
    };
    let Some(s) = case_state(state) else {
        return Err((
            id,
            format!(
                "state ({state}): one of in_progress (在办), resolved (已化解), escalated (已上交)"
            ),
        ));
    };
    Ok(pb::Case {
        id,
        category: c.to_pb() as i32,
        registered_on,
        state: s as i32,
        closed_on,
        deadline,
    })
}

/// A case state from its English code or Chinese word.
pub fn case_state(s: &str) -> Option<pb::CaseState> {
    match s {
        "in_progress" | "在办" | "办理中" => Some(pb::CaseState::InProgress),
        "resolved" | "化解" | "已化解" | "办结" | "已办结" => {
            Some(pb::CaseState::Resolved)
        }
        "escalated" | "上交" | "已上交" => Some(pb::CaseState::Escalated),
        _ => None,
    }
}

fn parse_task(
    id: String,
    title: String,
    deadline: String,
    state: &str,
) -> Result<pb::Task, (String, String)> {
    let Some(s) = task_state(state) else {
        return Err((
            id,
            format!("state ({state}): one of in_progress (进行中), completed (已完成)"),
        ));
    };
    Ok(pb::Task {
        id,
        title,
        deadline,
        state: s as i32,
    })
}

/// A task state from its English code or Chinese word.
pub fn task_state(s: &str) -> Option<pb::TaskState> {
    match s {
        "in_progress" | "进行中" | "在办" => Some(pb::TaskState::InProgress),
        "completed" | "完成" | "已完成" => Some(pb::TaskState::Completed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str, kind: Kind) -> Vec<Result<(u64, Row), Refused>> {
        let mut sheet = Sheet::new(text.as_bytes(), kind).expect("header");
        std::iter::from_fn(|| sheet.next_row())
            .map(|r| r.expect("csv"))
            .collect()
    }

    #[test]
    fn english_and_chinese_headers_and_values_parse() {
        let text = "\u{feff}编号,类别,登记日期,状态,办结日期\nA-1,邻里,2026-03-02,已化解,2026-03-09\nA-2,traffic,2026-03-02,在办,\n";
        let out = rows(text, Kind::Cases);
        let Ok((line, Row::Case(c))) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!((*line, c.state), (2, pb::CaseState::Resolved as i32));
        let Err(r) = &out[1] else { panic!("{out:?}") };
        assert_eq!(r.line, 3);
        assert!(
            r.reason.starts_with("category (traffic): unknown category"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn bad_headers_are_named() {
        let err = Sheet::new("id,colour\n".as_bytes(), Kind::Tasks)
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains("unknown column \"colour\""),
            "{err}"
        );
        let err = Sheet::new("id,title,deadline\n".as_bytes(), Kind::Tasks)
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains("required column \"state\""),
            "{err}"
        );
    }
}
