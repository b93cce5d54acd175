//! The whole subtree of a region for a month as one CSV: one row per unit,
//! with the figures and the signature each comes from.

use axum::{
    extract::{Path, Query as UrlQuery, State},
    response::Response,
};
use tallytree_proto::{PeriodRange, pb};

use super::{
    Refusal, Shared, blocking,
    figures::{month_of, tally},
    params::{self, ViewQuery, percent},
    session::Viewer,
    table::csv_download,
};
use crate::{access::Action, query::MAX_DEPTH};

/// The columns, stable for scripts (English codes) after the Chinese
/// header row's words.
const COLUMNS: [&str; 20] = [
    "region",
    "name",
    "level",
    "depth",
    "period",
    "registered",
    "resolved",
    "escalated",
    "in_progress",
    "resolved_on_time",
    "resolution",
    "on_time",
    "escalation",
    "tasks_assigned",
    "tasks_completed",
    "tasks_overdue",
    "task_completion",
    "revision",
    "digest",
    "key_id",
];

fn write_row(
    w: &mut csv::Writer<Vec<u8>>,
    row: &pb::RegionRow,
    m: Option<&pb::MonthFigures>,
    period: &str,
) {
    let mut fields: Vec<String> = vec![
        row.region.clone(),
        row.name.clone(),
        row.level.clone(),
        row.depth.to_string(),
        period.to_owned(),
    ];
    match m {
        Some(m) => {
            let t = tally(m);
            let (c, r) = (t.case_totals(), t.rates());
            fields.extend([
                c.registered.to_string(),
                c.resolved.to_string(),
                c.escalated.to_string(),
                c.in_progress.to_string(),
                c.resolved_on_time.to_string(),
                percent(r.resolution),
                percent(r.on_time),
                percent(r.escalation),
                t.tasks.assigned.to_string(),
                t.tasks.completed.to_string(),
                t.tasks.overdue.to_string(),
                percent(r.task_completion),
                m.revision.to_string(),
                m.digest.clone(),
                m.key_id.clone(),
            ]);
        }
        None => fields.extend((0..15).map(|_| String::new())),
    }
    let _ = w.write_record(&fields);
}

/// `/export/{region}?period=&depth=&bom=1`: every unit below `region` (to
/// `depth`, default the whole subtree) for the month.
pub(super) async fn subtree_csv(
    State(console): State<Shared>,
    viewer: Viewer,
    Path(code): Path<String>,
    UrlQuery(q): UrlQuery<ViewQuery>,
) -> Result<Response, Refusal> {
    let lang = viewer.lang;
    let (region, month) = params::view(&console, &viewer, Action::Read, &code, &q)?;
    let depth = q.depth.unwrap_or(MAX_DEPTH);
    let bom = q.bom();
    let c = console.clone();
    let bytes = blocking(move || {
        let rows = c
            .query
            .tally(Some(region), PeriodRange::month(month), depth)?
            .rows;
        let mut out = Vec::with_capacity(rows.len() * 160);
        if bom {
            out.extend_from_slice("\u{feff}".as_bytes());
        }
        let mut w = csv::Writer::from_writer(out);
        let _ = w.write_record(COLUMNS);
        let period = month.to_string();
        for row in &rows {
            write_row(&mut w, row, month_of(row, month), &period);
        }
        Ok::<_, crate::query::QueryError>(w.into_inner().unwrap_or_default())
    })
    .await?
    .map_err(|e| params::query_error(lang, &e))?;
    Ok(csv_download(
        &format!("{region}-{month}-subtree.csv"),
        bytes,
    ))
}
