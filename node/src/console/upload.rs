//! Upload of the CSV files `tallytree import` reads: the file is read by the
//! same sheet reader and checked by the same bulk import (as a dry run),
//! every row is shown as it would be stored or refused, with intake's
//! message; nothing is stored until the operator confirms. The checked
//! rows wait on the server for that session only, for a limited time.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use axum::{
    Form,
    extract::{Multipart, State},
    response::Response,
};
use maud::{Markup, html};
use serde::Deserialize;
use tallytree_proto::pb;

use super::{
    Refusal, Shared, blocking,
    lang::Words,
    params,
    session::Viewer,
    shell::Page,
    table::{Cell, Row as TableRow, Table},
};
use crate::{
    access::Action,
    intake::{Intake, IntakeError, Outcome},
    sheet::{Kind, Refused, Row, Sheet},
};

/// Uploads kept waiting at most, and for how long.
const MAX_PENDING: usize = 32;
const PENDING_FOR: Duration = Duration::from_secs(30 * 60);
/// Rows of a preview listed on the page (every refused one is listed up
/// to intake's own limit).
const PREVIEW_ROWS: usize = 2_000;
/// Rows per import chunk, as the CLI sends them.
const CHUNK_ROWS: usize = 2_000;

/// A checked file waiting for confirmation.
#[derive(Debug)]
struct Upload {
    /// The session it belongs to (its CSRF token).
    owner: String,
    kind: Kind,
    name: String,
    rows: Vec<(u64, Row)>,
    /// Rows the sheet reader refused (unknown category, state ...).
    unreadable: Vec<Refused>,
    at: Instant,
}

/// Uploads waiting for their operator's confirmation.
#[derive(Debug, Default)]
pub(super) struct Pending(Mutex<HashMap<String, Upload>>);

impl Pending {
    fn put(&self, id: String, upload: Upload) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, u| u.at.elapsed() < PENDING_FOR);
        if map.len() >= MAX_PENDING
            && let Some(oldest) = map.iter().min_by_key(|(_, u)| u.at).map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id, upload);
    }

    fn take(&self, id: &str, owner: &str) -> Option<Upload> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = map
            .get(id)
            .is_some_and(|u| u.owner == owner && u.at.elapsed() < PENDING_FOR);
        if fresh { map.remove(id) } else { None }
    }
}

fn upload_form(w: &Words, csrf: &str) -> Markup {
    html! {
        form.entry #upload-form method="post" action="/upload" enctype="multipart/form-data" {
            h2 { (w.upload_title) }
            p.hint { (w.upload_hint) }
            input type="hidden" name="csrf" value=(csrf);
            label { (w.upload_kind)
                select name="kind" {
                    option value="cases" { (w.kind_cases) }
                    option value="tasks" { (w.kind_tasks) }
                }
            }
            label { (w.file) input type="file" name="file" accept=".csv,text/csv" required; }
            button type="submit" { (w.preview) }
        }
    }
}

fn page_of(console: &Shared, viewer: &Viewer, body: Markup) -> Response {
    Page {
        viewer,
        console,
        title: viewer.lang.t().upload_title.into(),
        here: "/upload".into(),
        crumbs: Vec::new(),
        print: false,
        charts: false,
        report: None,
    }
    .render(body)
}

/// `GET /upload`.
pub(super) async fn page(
    State(console): State<Shared>,
    viewer: Viewer,
) -> Result<Response, Refusal> {
    viewer.require(Action::Write)?;
    let form = upload_form(viewer.lang.t(), &viewer.csrf);
    Ok(page_of(&console, &viewer, form))
}

/// Runs the rows through intake's bulk import: checked only (`dry_run`),
/// or stored. The same path as `tallytree import`.
fn import(
    intake: &Intake,
    rows: &[(u64, Row)],
    skip_invalid: bool,
    dry_run: bool,
) -> Result<Outcome, IntakeError> {
    let mut import = intake.begin_import();
    let mut first = true;
    let mut chunks = rows.chunks(CHUNK_ROWS).peekable();
    if chunks.peek().is_none() {
        import.add(pb::ImportChunk {
            skip_invalid,
            dry_run,
            ..pb::ImportChunk::default()
        })?;
    }
    for chunk in chunks {
        let mut c = pb::ImportChunk {
            skip_invalid: first && skip_invalid,
            dry_run: first && dry_run,
            ..pb::ImportChunk::default()
        };
        first = false;
        for (line, row) in chunk {
            match row {
                Row::Case(case) => c.cases.push(pb::ImportCase {
                    line: *line,
                    case: Some(case.clone()),
                }),
                Row::Task(task) => c.tasks.push(pb::ImportTask {
                    line: *line,
                    task: Some(task.clone()),
                }),
            }
        }
        import.add(c)?;
    }
    import.finish()
}

fn row_id(row: &Row) -> &str {
    match row {
        Row::Case(c) => &c.id,
        Row::Task(t) => &t.id,
    }
}

/// Every row with what happens to it, by line.
fn outcome_table(w: &Words, u: &Upload, out: &Outcome, stored: bool) -> (Table, usize) {
    let mut t = Table::new(
        "preview",
        format!("{} · {}", u.name, w.preview),
        &[w.line, w.id, w.outcome],
    );
    let mut refused: HashMap<u64, String> = out
        .refused
        .iter()
        .map(|r| (r.line, r.violation.to_string()))
        .collect();
    for r in &u.unreadable {
        refused.insert(r.line, r.reason.clone());
    }
    let mut lines: Vec<(u64, &str)> = u.rows.iter().map(|(l, r)| (*l, row_id(r))).collect();
    lines.extend(u.unreadable.iter().map(|r| (r.line, r.id.as_str())));
    lines.sort_by_key(|(l, _)| *l);
    let refused_count = refused
        .len()
        .max(out.refused_count as usize + u.unreadable.len());
    // Refused rows first, then the others, each in line order.
    lines.sort_by_key(|(l, _)| (!refused.contains_key(l), *l));
    for (line, id) in lines.into_iter().take(PREVIEW_ROWS) {
        let (text, class) = match refused.remove(&line) {
            Some(reason) => (format!("{}: {reason}", w.will_refuse), "refused"),
            None if stored => (w.stored.to_owned(), "ok"),
            None => (w.will_store.to_owned(), "ok"),
        };
        t.rows.push(TableRow {
            cells: vec![Cell::num(line), Cell::text(id), Cell::class(text, class)],
            href: None,
            class,
        });
    }
    (t, refused_count)
}

/// `POST /upload` (multipart): reads and checks the file, shows the preview.
pub(super) async fn preview(
    State(console): State<Shared>,
    viewer: Viewer,
    mut form: Multipart,
) -> Result<Response, Refusal> {
    viewer.require(Action::Write)?;
    let lang = viewer.lang;
    let w = lang.t();
    let (mut csrf, mut kind, mut name, mut bytes) =
        (String::new(), Kind::Cases, String::new(), None);
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| params::bad_request(lang, &format!("file: {e}")))?
    {
        match field.name() {
            Some("csrf") => csrf = field.text().await.unwrap_or_default(),
            Some("kind") => {
                kind = match field.text().await.unwrap_or_default().as_str() {
                    "tasks" => Kind::Tasks,
                    _ => Kind::Cases,
                }
            }
            Some("file") => {
                name = field.file_name().unwrap_or("upload.csv").to_owned();
                let data = field.bytes().await.map_err(|e| {
                    params::bad_request(
                        lang,
                        &format!(
                            "file: {e} (console.max_upload_bytes: {})",
                            console.config.max_upload_bytes
                        ),
                    )
                })?;
                bytes = Some(data);
            }
            _ => {}
        }
    }
    viewer.check_form(&csrf)?;
    let Some(bytes) = bytes else {
        return Err(params::bad_request(lang, "file: required"));
    };
    if bytes.len() > console.config.max_upload_bytes {
        return Err(params::bad_request(
            lang,
            &format!(
                "file: larger than console.max_upload_bytes ({})",
                console.config.max_upload_bytes
            ),
        ));
    }
    let c = console.clone();
    let checked = blocking(move || {
        let mut sheet = Sheet::new(&bytes[..], kind).map_err(|e| e.to_string())?;
        let (mut rows, mut unreadable) = (Vec::new(), Vec::new());
        while let Some(row) = sheet.next_row() {
            match row.map_err(|e| e.to_string())? {
                Ok(r) => rows.push(r),
                Err(r) => unreadable.push(r),
            }
        }
        let out = import(&c.intake, &rows, true, true).map_err(|e| e.to_string())?;
        Ok::<_, String>((rows, unreadable, out))
    })
    .await?;
    let (rows, unreadable, out) = match checked {
        Ok(c) => c,
        Err(message) => {
            let body = html! {
                p.notice.error role="alert" { (name) ": " (message) }
                (upload_form(w, &viewer.csrf))
            };
            return Ok(page_of(&console, &viewer, body));
        }
    };
    let upload = Upload {
        owner: viewer.csrf.clone(),
        kind,
        name,
        rows,
        unreadable,
        at: Instant::now(),
    };
    let (table, refused) = outcome_table(w, &upload, &out, false);
    let total = upload.rows.len() + upload.unreadable.len();
    let id = super::session::new_id();
    let kind_label = match upload.kind {
        Kind::Cases => w.kind_cases,
        Kind::Tasks => w.kind_tasks,
    };
    let body = html! {
        h1 { (w.upload_title) " · " (upload.name) " (" (kind_label) ")" }
        p.summary #preview-summary {
            (total - refused) " " (w.preview_summary) " " (refused) " " (w.preview_refused)
        }
        @if refused > 0 { p.hint { (w.all_refused_note) } }
        form.entry #confirm-form method="post" action="/upload/confirm" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="upload" value=(id);
            @if refused > 0 {
                label.check { input type="checkbox" name="skip_invalid" value="1"; (w.skip_invalid) }
            }
            button type="submit" { (w.confirm) }
        }
        (table.render(None, w))
    };
    console.uploads.put(id, upload);
    Ok(page_of(&console, &viewer, body))
}

/// The confirmation form.
#[derive(Debug, Deserialize)]
pub(super) struct Confirm {
    #[serde(default)]
    csrf: String,
    upload: String,
    skip_invalid: Option<String>,
}

/// `POST /upload/confirm`: stores the checked rows (all, or the valid ones
/// with `skip_invalid`), checked again against what is stored now.
pub(super) async fn confirm(
    State(console): State<Shared>,
    viewer: Viewer,
    Form(f): Form<Confirm>,
) -> Result<Response, Refusal> {
    viewer.require(Action::Write)?;
    viewer.check_form(&f.csrf)?;
    let lang = viewer.lang;
    let w = lang.t();
    let Some(upload) = console.uploads.take(&f.upload, &viewer.csrf) else {
        return Err(params::bad_request(lang, w.upload_expired));
    };
    let skip_invalid = f.skip_invalid.is_some();
    let c = console.clone();
    let (upload, out) = blocking(move || {
        // Rows the reader refused refuse the file, unless skipped, as in
        // `tallytree import`.
        let out = if !upload.unreadable.is_empty() && !skip_invalid {
            import(&c.intake, &upload.rows, true, true).map(|o| (o, false))
        } else {
            import(&c.intake, &upload.rows, skip_invalid, false).map(|o| (o, true))
        };
        (upload, out)
    })
    .await?;
    let (out, attempted) = out.map_err(|e| params::bad_request(lang, &e.to_string()))?;
    let stored = attempted && (out.refused_count == 0 || skip_invalid);
    let (table, refused) = outcome_table(w, &upload, &out, stored);
    let body = html! {
        h1 { (w.upload_title) " · " (upload.name) }
        @if stored {
            p.notice.ok role="status" #upload-result { (out.accepted) " " (w.stored) " · " (refused) " " (w.preview_refused) }
        } @else {
            p.notice.error role="alert" #upload-result { (w.nothing_stored) }
        }
        (table.render(None, w))
        p { a href="/entry" { (w.own_months) } }
    };
    Ok(page_of(&console, &viewer, body))
}
