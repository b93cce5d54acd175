//! `tallytree query`: a region's figures for a period, as a table (Chinese
//! names, counts, rates to 2 decimals, "—" when undefined), JSON or CSV.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Value, json};
use tallytree_aggregator::{CaseCounts, Tally};
use tallytree_proto::{
    Category, Level, RegionCode,
    pb::{self, query_client::QueryClient},
};

use crate::{
    conn::{Conn, explain},
    table::{Align, Table, count, percent},
};

/// How to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text tables.
    Table,
    /// JSON, one document.
    Json,
    /// CSV with a header row.
    Csv,
}

impl Format {
    /// The format `--json` and `--csv` ask for.
    pub fn of(json: bool, csv: bool) -> Format {
        if json {
            Format::Json
        } else if csv {
            Format::Csv
        } else {
            Format::Table
        }
    }
}

/// What to ask.
#[derive(Debug, Clone)]
pub struct QueryArgs {
    /// Region; the node's own when empty.
    pub region: Option<RegionCode>,
    /// Period text.
    pub period: String,
    /// Drill-down depth.
    pub depth: u32,
    /// One row per month.
    pub by_month: bool,
    /// Output.
    pub format: Format,
}

/// Runs the query and prints it.
pub async fn run(conn: &Conn, args: QueryArgs) -> Result<ExitCode> {
    let mut client = QueryClient::new(conn.connect().await?).max_decoding_message_size(256 << 20);
    let response = client
        .tally(pb::TallyRequest {
            region: args.region.map(|r| r.to_string()).unwrap_or_default(),
            period: args.period.clone(),
            depth: args.depth,
        })
        .await
        .map_err(explain)?
        .into_inner();
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&response, &args.period))?
        ),
        Format::Csv => print!(
            "{}",
            tables(&response, &args)?
                .iter()
                .map(|t| t.1.to_csv())
                .collect::<Result<Vec<_>>>()?
                .join("\n")
        ),
        Format::Table => {
            for (title, table) in tables(&response, &args)? {
                if !title.is_empty() {
                    println!("{title}");
                }
                println!("{}", table.render());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn tally_of(t: &Option<pb::Tally>) -> Tally {
    t.as_ref()
        .and_then(|t| Tally::from_pb(t, "total").ok())
        .unwrap_or_default()
}

fn level_label(level: &str) -> &'static str {
    match level {
        "province" => Level::Province.label(),
        "city" => Level::City.label(),
        "district" => Level::District.label(),
        "street" => Level::Street.label(),
        _ => Level::Village.label(),
    }
}

const CASE_HEADERS: [(&str, Align); 8] = [
    ("登记", Align::Right),
    ("化解", Align::Right),
    ("上交", Align::Right),
    ("在办", Align::Right),
    ("按期化解", Align::Right),
    ("化解率", Align::Right),
    ("按期率", Align::Right),
    ("上交率", Align::Right),
];

fn case_cells(c: &CaseCounts) -> Vec<String> {
    let mut t = Tally::default();
    *t.category_mut(Category::Other) = *c;
    let r = t.rates();
    vec![
        count(c.registered),
        count(c.resolved),
        count(c.escalated),
        count(c.in_progress),
        count(c.resolved_on_time),
        percent(r.resolution),
        percent(r.on_time),
        percent(r.escalation),
    ]
}

fn task_cells(t: &Tally) -> Vec<String> {
    vec![
        count(t.tasks.assigned),
        count(t.tasks.completed),
        count(t.tasks.overdue),
        percent(t.rates().task_completion),
    ]
}

const TASK_HEADERS: [(&str, Align); 4] = [
    ("任务", Align::Right),
    ("完成", Align::Right),
    ("逾期", Align::Right),
    ("完成率", Align::Right),
];

fn columns(
    first: &[(&'static str, Align)],
    tail: &[(&'static str, Align)],
) -> Vec<(&'static str, Align)> {
    let mut cols = first.to_vec();
    cols.extend_from_slice(&CASE_HEADERS);
    cols.extend_from_slice(&TASK_HEADERS);
    cols.extend_from_slice(tail);
    cols
}

fn title_of(row: &pb::RegionRow, period: &str) -> String {
    let mut title = format!(
        "{} ({}, {}) · {period}",
        row.name,
        row.region,
        level_label(&row.level)
    );
    if !row.months_missing.is_empty() {
        title.push_str(&format!(
            " · no signed figures for {}",
            row.months_missing.join(", ")
        ));
    }
    if row.pending {
        title.push_str(" · changes being signed");
    }
    title
}

/// One month of a region's figures, as a by-month table shows it.
#[derive(Debug, Clone)]
pub struct MonthRow {
    /// The month, `YYYY-MM`.
    pub period: String,
    /// Its total.
    pub total: Tally,
    /// The revision of the signed summary.
    pub revision: u64,
    /// The summary's payload digest (hex).
    pub digest: String,
    /// Whether it verified.
    pub verified: bool,
}

/// One region of a drill-down table.
#[derive(Debug, Clone)]
pub struct RegionRow {
    /// Its Chinese name.
    pub name: String,
    /// Its code.
    pub code: String,
    /// Levels below the table's top, for the indent.
    pub depth: u32,
    /// Its total over the period.
    pub total: Tally,
    /// Children counted, over the months.
    pub children_reported: u32,
    /// Children expected, over the months.
    pub children_expected: u32,
    /// Whether it verified.
    pub verified: bool,
}

fn mark(verified: bool) -> String {
    if verified { "✓" } else { "✗" }.into()
}

/// A region's months, one row each, and their sum (`合计`): the table of
/// `query --by-month`, and of what `audit verify` proved.
pub fn months_table(months: &[MonthRow], total: &Tally) -> Table {
    let cols = columns(
        &[("月份", Align::Left)],
        &[
            ("修订", Align::Right),
            ("摘要", Align::Left),
            ("核验", Align::Left),
        ],
    );
    let mut table = Table::new(&cols);
    for m in months {
        let mut cells = vec![m.period.clone()];
        cells.extend(case_cells(&m.total.case_totals()));
        cells.extend(task_cells(&m.total));
        cells.push(m.revision.to_string());
        cells.push(m.digest.chars().take(12).collect());
        cells.push(mark(m.verified));
        table.push(cells);
    }
    let mut cells = vec!["合计".to_owned()];
    cells.extend(case_cells(&total.case_totals()));
    cells.extend(task_cells(total));
    cells.extend(["".into(), "".into(), "".into()]);
    table.push(cells);
    table
}

/// Regions, one row each, indented by depth: the drill-down table of
/// `query --depth N`, and of every region `audit verify --all` proved.
pub fn regions_table(rows: &[RegionRow]) -> Table {
    let cols = columns(
        &[("单位", Align::Left), ("代码", Align::Left)],
        &[("上报/应报", Align::Right), ("核验", Align::Left)],
    );
    let mut table = Table::new(&cols);
    for row in rows {
        let mut cells = vec![
            format!("{}{}", "  ".repeat(row.depth as usize), row.name),
            row.code.clone(),
        ];
        cells.extend(case_cells(&row.total.case_totals()));
        cells.extend(task_cells(&row.total));
        cells.push(format!(
            "{}/{}",
            row.children_reported, row.children_expected
        ));
        cells.push(mark(row.verified));
        table.push(cells);
    }
    table
}

/// The tables to print: categories of one region, months of each region, or
/// the drill-down of regions.
fn tables(r: &pb::TallyResponse, args: &QueryArgs) -> Result<Vec<(String, Table)>> {
    let mut out = Vec::new();
    if args.by_month {
        for row in &r.rows {
            let months: Vec<MonthRow> = row
                .months
                .iter()
                .map(|m| MonthRow {
                    period: m.period.clone(),
                    total: tally_of(&m.total),
                    revision: m.revision,
                    digest: m.digest.clone(),
                    verified: m.verified,
                })
                .collect();
            let table = months_table(&months, &tally_of(&row.total));
            out.push((title_of(row, &args.period), table));
        }
        return Ok(out);
    }
    if r.rows.len() == 1 && args.depth == 0 {
        let row = &r.rows[0];
        let t = tally_of(&row.total);
        let mut cols = vec![("类别", Align::Left)];
        cols.extend_from_slice(&CASE_HEADERS);
        let mut table = Table::new(&cols);
        for c in Category::ALL {
            let mut cells = vec![c.label().to_owned()];
            cells.extend(case_cells(t.category(c)));
            table.push(cells);
        }
        let mut cells = vec!["合计".to_owned()];
        cells.extend(case_cells(&t.case_totals()));
        table.push(cells);
        let mut title = title_of(row, &args.period);
        let revisions: Vec<String> = row
            .months
            .iter()
            .map(|m| {
                format!(
                    "{} r{} {}",
                    m.period,
                    m.revision,
                    m.digest.chars().take(12).collect::<String>()
                )
            })
            .collect();
        if !revisions.is_empty() {
            title.push_str(&format!("\nsigned revisions: {}", revisions.join(", ")));
        }
        out.push((title, table));
        let mut tasks = Table::new(&TASK_HEADERS);
        tasks.push(task_cells(&t));
        out.push(("治理任务".to_owned(), tasks));
        return Ok(out);
    }
    let rows: Vec<RegionRow> = r
        .rows
        .iter()
        .map(|row| RegionRow {
            name: row.name.clone(),
            code: row.region.clone(),
            depth: row.depth,
            total: tally_of(&row.total),
            children_reported: row.children_reported,
            children_expected: row.children_expected,
            verified: row.verified,
        })
        .collect();
    let title = r
        .rows
        .first()
        .map(|row| title_of(row, &args.period))
        .unwrap_or_default();
    out.push((title, regions_table(&rows)));
    Ok(out)
}

fn counts_json(c: &CaseCounts) -> Value {
    json!({
        "registered": c.registered,
        "resolved": c.resolved,
        "escalated": c.escalated,
        "in_progress": c.in_progress,
        "resolved_on_time": c.resolved_on_time,
    })
}

/// A tally as JSON: counts per category, case totals, tasks and rates; the
/// shape `query --json` and `audit verify --json` share.
pub fn tally_json(t: &Tally) -> Value {
    let r = t.rates();
    let cases: serde_json::Map<String, Value> = Category::ALL
        .iter()
        .map(|c| {
            (
                c.code().to_owned(),
                json!({"label": c.label(), "counts": counts_json(t.category(*c))}),
            )
        })
        .collect();
    json!({
        "cases": cases,
        "case_totals": counts_json(&t.case_totals()),
        "tasks": {
            "assigned": t.tasks.assigned,
            "completed": t.tasks.completed,
            "in_progress": t.tasks.in_progress,
            "overdue": t.tasks.overdue,
        },
        "rates": {
            "resolution": r.resolution,
            "on_time": r.on_time,
            "escalation": r.escalation,
            "task_completion": r.task_completion,
        },
    })
}

fn to_json(r: &pb::TallyResponse, period: &str) -> Value {
    let rows: Vec<Value> = r
        .rows
        .iter()
        .map(|row| {
            let months: Vec<Value> = row
                .months
                .iter()
                .map(|m| {
                    json!({
                        "period": m.period,
                        "revision": m.revision,
                        "digest": m.digest,
                        "issued_at_ms": m.issued_at_ms,
                        "received_at_ms": m.received_at_ms,
                        "children_reported": m.children_reported,
                        "children_expected": m.children_expected,
                        "verified": m.verified,
                        "total": tally_json(&tally_of(&m.total)),
                        "local": tally_json(&tally_of(&m.local)),
                    })
                })
                .collect();
            json!({
                "region": row.region,
                "name": row.name,
                "level": row.level,
                "depth": row.depth,
                "total": tally_json(&tally_of(&row.total)),
                "months": months,
                "months_missing": row.months_missing,
                "children_reported": row.children_reported,
                "children_expected": row.children_expected,
                "verified": row.verified,
                "pending": row.pending,
            })
        })
        .collect();
    json!({
        "period": period,
        "category_list_version": r.category_list_version,
        "rows": rows,
    })
}
