//! Entry, for operators and grid workers: a case and a task form, phone
//! sized, checked by the same intake rules and messages as the CLI; the
//! cases still in progress, each a link to update it; and the unit's own
//! months with their signing status.

use axum::{
    Form,
    extract::{Path, Query as UrlQuery, State},
    response::Response,
};
use maud::{Markup, html};
use serde::Deserialize;
use tallytree_aggregator::CaseState;
use tallytree_proto::{Category, Month, PeriodRange, pb};

use super::{
    Console, Refusal, Shared, blocking,
    lang::Words,
    params::{self, ViewQuery, local_time, previous},
    session::Viewer,
    shell::{Page, Report},
    table::{Cell, Table},
};
use crate::{
    access::Action,
    intake::{IntakeError, Refused, Submission},
    sheet::{case_state, task_state},
    store::layout,
};

/// `?case=ID` prefills the case form with a stored case.
#[derive(Debug, Default, Deserialize)]
pub(super) struct EntryQuery {
    case: Option<String>,
    #[serde(flatten)]
    view: ViewQuery,
}

/// What the page says after a form was sent.
enum Notice {
    Saved(String),
    Refused(String),
}

/// The case form's fields; a missing one is empty, and intake names it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct CaseForm {
    #[serde(default)]
    csrf: String,
    id: String,
    category: String,
    registered_on: String,
    state: String,
    #[serde(default)]
    closed_on: String,
    #[serde(default)]
    deadline: String,
}

/// The task form's fields; a missing one is empty, and intake names it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct TaskForm {
    #[serde(default)]
    csrf: String,
    id: String,
    title: String,
    deadline: String,
    state: String,
}

fn case_form(w: &Words, csrf: &str, c: &CaseForm) -> Markup {
    let states = [
        ("in_progress", w.state_in_progress),
        ("resolved", w.state_resolved),
        ("escalated", w.state_escalated),
    ];
    html! {
        form.entry #case-form method="post" action="/entry/case" {
            h2 { (w.case_form) }
            input type="hidden" name="csrf" value=(csrf);
            label { (w.case_id) input name="id" required value=(c.id) autocomplete="off"; }
            label { (w.category)
                select name="category" required {
                    @for cat in Category::ALL {
                        option value=(cat.code()) selected[c.category == cat.code()] { (cat.label()) }
                    }
                }
            }
            label { (w.registered_on) input type="date" name="registered_on" required value=(c.registered_on); }
            label { (w.state)
                select name="state" {
                    @for (code, label) in states {
                        option value=(code) selected[c.state == code] { (label) }
                    }
                }
            }
            label { (w.closed_on) input type="date" name="closed_on" value=(c.closed_on); }
            label { (w.deadline) input type="date" name="deadline" value=(c.deadline); }
            button type="submit" { (w.save) }
        }
    }
}

fn task_form(w: &Words, csrf: &str) -> Markup {
    html! {
        form.entry #task-form method="post" action="/entry/task" {
            h2 { (w.task_form) }
            input type="hidden" name="csrf" value=(csrf);
            label { (w.task_id) input name="id" required autocomplete="off"; }
            label { (w.task_title) input name="title" required; }
            label { (w.task_deadline) input type="date" name="deadline" required; }
            label { (w.state)
                select name="state" {
                    option value="in_progress" { (w.task_in_progress) }
                    option value="completed" { (w.task_completed) }
                }
            }
            button type="submit" { (w.save) }
        }
    }
}

/// The unit's own months: what it recorded, and whether it is signed.
fn own_months(
    console: &Console,
    w: &Words,
    month: Month,
) -> Result<Table, crate::query::QueryError> {
    let from = Month::new(month.year() - 1, month.month()).map_or(month, Month::next);
    let rows = console
        .query
        .tally(None, PeriodRange { from, to: month }, 0)?
        .rows;
    let pending = console.query.pending_months()?;
    let mut t = Table::new(
        "months",
        w.own_months,
        &[
            w.month,
            w.registered,
            w.resolved,
            w.escalated,
            w.in_progress,
            w.tasks_assigned,
            w.tasks_completed,
            w.revision,
            w.signed_at,
            w.signing_status,
        ],
    );
    let row = rows.first();
    let mut m = month;
    loop {
        let signed = row.and_then(|r| super::figures::month_of(r, m));
        let local = signed
            .and_then(|s| s.local.as_ref())
            .and_then(|l| tallytree_aggregator::Tally::from_pb(l, "local").ok())
            .unwrap_or_default();
        let c = local.case_totals();
        let status = if pending.contains(&m) {
            Cell::class(w.pending, "warn")
        } else if signed.is_some() {
            Cell::class(w.signed, "ok")
        } else {
            Cell::text("—")
        };
        t.push(
            vec![
                Cell::text(m.to_string()),
                Cell::num(c.registered),
                Cell::num(c.resolved),
                Cell::num(c.escalated),
                Cell::num(c.in_progress),
                Cell::num(local.tasks.assigned),
                Cell::num(local.tasks.completed),
                signed.map_or(Cell::text("—"), |s| {
                    Cell::link(
                        s.revision.to_string(),
                        format!("/summary/{}/{m}", console.ctx.identity.region),
                    )
                }),
                Cell::text(signed.map_or("—".into(), |s| local_time(console, s.issued_at_ms))),
                status,
            ],
            None,
        );
        match previous(m) {
            Some(p) if p >= from => m = p,
            _ => break,
        }
    }
    Ok(t)
}

/// The cases still in progress of the last three months, newest month
/// first, each a link that fills the form to update it.
fn open_cases(
    console: &Console,
    w: &Words,
    month: Month,
) -> Result<Table, crate::store::StoreError> {
    /// Listed at most.
    const LISTED: usize = 100;
    let mut t = Table::new(
        "open",
        w.open_cases,
        &[w.case_id, w.category, w.registered_on, w.deadline],
    );
    let store = console.ctx.ledger.store();
    let mut m = Some(month);
    for _ in 0..3 {
        let Some(month) = m else { break };
        layout::for_each_case_with_id(store, month, |id, c| {
            if c.state == CaseState::InProgress && t.rows.len() < LISTED {
                t.push(
                    vec![
                        Cell::link(
                            id.to_owned(),
                            format!("/entry?case={}#case-form", super::session::url_encode(id)),
                        ),
                        Cell::text(c.category.label()),
                        Cell::text(c.registered_on.to_string()),
                        Cell::text(c.deadline.to_string()),
                    ],
                    None,
                );
            }
        })?;
        m = previous(month);
    }
    Ok(t)
}

async fn render(
    console: Shared,
    viewer: Viewer,
    month: Month,
    prefill: CaseForm,
    notice: Option<Notice>,
) -> Result<Response, Refusal> {
    let lang = viewer.lang;
    let w = lang.t();
    let c = console.clone();
    let (months, open) = blocking(move || {
        let months = own_months(&c, w, month);
        let open = open_cases(&c, w, month);
        (months, open)
    })
    .await?;
    let months = months.map_err(|e| params::query_error(lang, &e))?;
    let open = open.map_err(|e| params::query_error(lang, &e.into()))?;
    let csrf = viewer.csrf.clone();
    let body = html! {
        h1 { (console.ctx.identity.name) " · " (w.entry_title) }
        @match &notice {
            Some(Notice::Saved(m)) => p.notice.ok role="status" { (m) },
            Some(Notice::Refused(m)) => p.notice.error role="alert" { (w.refused) "：" (m) },
            None => {},
        }
        div.forms {
            (case_form(w, &csrf, &prefill))
            (task_form(w, &csrf))
        }
        @if !open.rows.is_empty() { (open.render(None, w)) }
        (months.render(Some(("/entry", &format!("period={month}"))), w))
    };
    Ok(Page {
        viewer: &viewer,
        console: &console,
        title: w.entry_title.into(),
        here: "/entry".into(),
        crumbs: Vec::new(),
        print: false,
        charts: false,
        report: Some(Report {
            period: month.to_string(),
            signature: None,
        }),
    }
    .render(body))
}

/// `/entry`.
pub(super) async fn page(
    State(console): State<Shared>,
    viewer: Viewer,
    UrlQuery(q): UrlQuery<EntryQuery>,
) -> Result<Response, Refusal> {
    viewer.require(Action::Write)?;
    let month = console.ctx.clock.month();
    let mut prefill = CaseForm::default();
    if let Some(id) = q.case.filter(|id| !id.is_empty()) {
        let c = console.clone();
        let lookup = id.clone();
        let stored = blocking(move || layout::load_case(c.ctx.ledger.store(), &lookup))
            .await?
            .map_err(|e| params::query_error(viewer.lang, &e.into()))?;
        if let Some(r) = stored {
            prefill = CaseForm {
                id,
                category: r.category.code().into(),
                registered_on: r.registered_on.to_string(),
                state: match r.state {
                    CaseState::InProgress => "in_progress",
                    CaseState::Resolved => "resolved",
                    CaseState::Escalated => "escalated",
                }
                .into(),
                closed_on: r.closed_on.map(|d| d.to_string()).unwrap_or_default(),
                deadline: r.deadline.to_string(),
                ..CaseForm::default()
            };
        }
    }
    let _ = q.view;
    render(console, viewer, month, prefill, None).await
}

/// The message of a refused entry: the field and the rule, as intake says.
fn refusal(e: &IntakeError) -> String {
    match e {
        IntakeError::Refused(Refused::Rows { refused, .. }) => refused
            .first()
            .map_or_else(|| e.to_string(), |r| r.violation.to_string()),
        other => other.to_string(),
    }
}

async fn record(
    console: Shared,
    viewer: Viewer,
    sub: Submission,
    prefill: CaseForm,
    saved: String,
) -> Result<Response, Refusal> {
    let intake = console.intake.clone();
    let outcome = blocking(move || intake.record_all(sub)).await?;
    let month = console.ctx.clock.month();
    match outcome {
        Ok(_) => {
            render(
                console,
                viewer,
                month,
                CaseForm::default(),
                Some(Notice::Saved(saved)),
            )
            .await
        }
        Err(e) => {
            render(
                console,
                viewer,
                month,
                prefill,
                Some(Notice::Refused(refusal(&e))),
            )
            .await
        }
    }
}

/// `POST /entry/case`.
pub(super) async fn record_case(
    State(console): State<Shared>,
    viewer: Viewer,
    Form(f): Form<CaseForm>,
) -> Result<Response, Refusal> {
    viewer.require(Action::Write)?;
    viewer.check_form(&f.csrf)?;
    let w = viewer.lang.t();
    let Some(state) = case_state(f.state.trim()) else {
        let message = format!(
            "state ({}): one of in_progress, resolved, escalated",
            f.state
        );
        return render(
            console.clone(),
            viewer,
            console.ctx.clock.month(),
            f,
            Some(Notice::Refused(message)),
        )
        .await;
    };
    let category = Category::parse(&f.category);
    let case = pb::Case {
        id: f.id.trim().to_owned(),
        category: category.map_or(-1, |c| c.to_pb() as i32),
        registered_on: f.registered_on.trim().to_owned(),
        state: state as i32,
        closed_on: f.closed_on.trim().to_owned(),
        deadline: f.deadline.trim().to_owned(),
    };
    let saved = format!("{} {} · {}", w.case_id, case.id, w.saved);
    let sub = Submission {
        cases: vec![(1, case)],
        ..Submission::default()
    };
    record(console, viewer, sub, f, saved).await
}

/// `POST /entry/task`.
pub(super) async fn record_task(
    State(console): State<Shared>,
    viewer: Viewer,
    Form(f): Form<TaskForm>,
) -> Result<Response, Refusal> {
    viewer.require(Action::Write)?;
    viewer.check_form(&f.csrf)?;
    let w = viewer.lang.t();
    let Some(state) = task_state(f.state.trim()) else {
        let message = format!("state ({}): one of in_progress, completed", f.state);
        return render(
            console.clone(),
            viewer,
            console.ctx.clock.month(),
            CaseForm::default(),
            Some(Notice::Refused(message)),
        )
        .await;
    };
    let task = pb::Task {
        id: f.id.trim().to_owned(),
        title: f.title.trim().to_owned(),
        deadline: f.deadline.trim().to_owned(),
        state: state as i32,
    };
    let saved = format!("{} {} · {}", w.task_id, task.id, w.saved);
    let sub = Submission {
        tasks: vec![(1, task)],
        ..Submission::default()
    };
    record(console, viewer, sub, CaseForm::default(), saved).await
}

/// `/entry/months.csv`.
pub(super) async fn table_csv(
    State(console): State<Shared>,
    viewer: Viewer,
    Path(file): Path<String>,
    UrlQuery(q): UrlQuery<ViewQuery>,
) -> Result<Response, Refusal> {
    viewer.require(Action::Write)?;
    let lang = viewer.lang;
    if file != "months.csv" {
        return Err(params::bad_request(
            lang,
            &format!("table ({file}): months.csv"),
        ));
    }
    let month = params::month(&console, lang, &q)?;
    let c = console.clone();
    let t = blocking(move || own_months(&c, lang.t(), month))
        .await?
        .map_err(|e| params::query_error(lang, &e))?;
    Ok(t.csv_response(&format!("{}", console.ctx.identity.region), q.bom()))
}
