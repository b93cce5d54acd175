//! The completeness view: the units below a region × the 12 months up to
//! the one shown, each cell received / late / missing / not verified, the
//! units with missing months first.

use axum::{
    extract::{Path, Query as UrlQuery, State},
    response::Response,
};
use maud::html;
use tallytree_proto::{Month, PeriodRange, RegionCode};

use super::{
    Console, Refusal, Shared,
    figures::{crumbs, period_form},
    lang::Words,
    params::{self, ViewQuery},
    session::Viewer,
    shell::{Page, Report},
    table::{Cell, Table},
};
use crate::{
    access::Action,
    query::{Completeness, QueryError, ReportStatus},
};

fn load(console: &Console, region: RegionCode, month: Month) -> Result<Completeness, QueryError> {
    let from = Month::new(month.year() - 1, month.month()).map_or(month, Month::next);
    console.query.completeness(
        region,
        PeriodRange { from, to: month },
        console.ctx.findings.params().timely_days,
    )
}

fn cell(console: &Console, w: &Words, s: ReportStatus, href: String) -> Cell {
    let day = |ms: i64| {
        params::local_time(console, ms)
            .chars()
            .take(10)
            .collect::<String>()
    };
    let (text, class) = match s {
        ReportStatus::Received {
            first_signed_ms, ..
        } => (
            format!("{} {}", w.status_received, day(first_signed_ms)),
            "received",
        ),
        ReportStatus::Late {
            first_signed_ms, ..
        } => (
            format!("{} {}", w.status_late, day(first_signed_ms)),
            "late",
        ),
        ReportStatus::NotVerified { .. } => (w.status_unverified.to_owned(), "unverified"),
        ReportStatus::Missing => (w.status_missing.to_owned(), "missing"),
        ReportStatus::NotDue => ("·".to_owned(), "notdue"),
    };
    let mut c = Cell::class(text, class);
    if !matches!(s, ReportStatus::Missing | ReportStatus::NotDue) {
        c.href = Some(href);
    }
    c
}

fn grid(console: &Console, w: &Words, c: &Completeness, month: Month) -> Table {
    let mut columns: Vec<String> = vec![
        w.unit.into(),
        w.code.into(),
        w.missing_count.into(),
        w.late_count.into(),
    ];
    columns.extend(c.months.iter().map(Month::to_string));
    let mut t = Table {
        id: "reports",
        caption: w.completeness_title.into(),
        columns,
        rows: Vec::new(),
    };
    for u in &c.units {
        let mut cells = vec![
            Cell::link(
                u.name.clone(),
                format!("/completeness/{}?period={month}", u.region),
            ),
            Cell::text(u.region.to_string()),
            Cell::num(u.missing()),
            Cell::num(u.late()),
        ];
        for (m, s) in c.months.iter().zip(&u.months) {
            cells.push(cell(console, w, *s, format!("/summary/{}/{m}", u.region)));
        }
        t.rows.push(super::table::Row {
            cells,
            href: None,
            class: if u.missing() > 0 { "has-missing" } else { "" },
        });
    }
    // The totals: reports received of those expected, per month.
    let mut totals = vec![
        Cell::text(w.received_count),
        Cell::text(""),
        Cell::num(c.units.iter().map(|u| u.missing()).sum::<usize>()),
        Cell::num(c.units.iter().map(|u| u.late()).sum::<usize>()),
    ];
    for i in 0..c.months.len() {
        let expected = c
            .units
            .iter()
            .filter(|u| u.months[i] != ReportStatus::NotDue)
            .count();
        let received = c
            .units
            .iter()
            .filter(|u| !matches!(u.months[i], ReportStatus::Missing | ReportStatus::NotDue))
            .count();
        totals.push(Cell::num(format!("{received}/{expected}")));
    }
    t.rows.push(super::table::Row {
        cells: totals,
        href: None,
        class: "totals",
    });
    t
}

/// `/completeness/{region}?period=`.
pub(super) async fn page(
    State(console): State<Shared>,
    viewer: Viewer,
    Path(code): Path<String>,
    UrlQuery(q): UrlQuery<ViewQuery>,
) -> Result<Response, Refusal> {
    let lang = viewer.lang;
    let (region, month) = params::view(&console, &viewer, Action::Read, &code, &q)?;
    let c = console.clone();
    let report = params::ask(lang, move || load(&c, region, month)).await?;
    let w = lang.t();
    let table = grid(&console, w, &report, month);
    let name = params::unit_name(&console, region);
    let query = format!("period={month}");
    let base = format!("/completeness/{region}");
    let body = html! {
        h1 { (name) " · " (w.completeness_title) }
        (period_form(w, &base, month, &format!("{base}?{query}&print=1")))
        p.hint {
            (w.completeness_hint) " " (report.late_after_days) " " (w.completeness_days) "。"
            (w.missing_first)
        }
        p.legend {
            span.received { (w.status_received) } " "
            span.late { (w.status_late) } " "
            span.missing { (w.status_missing) } " "
            span.unverified { (w.status_unverified) }
        }
        @if report.units.is_empty() { p.muted { (w.no_children) } }
        @else { (table.render(Some((&base, &query)), w)) }
    };
    Ok(Page {
        viewer: &viewer,
        console: &console,
        title: w.completeness_title.into(),
        here: format!("{base}?{query}"),
        crumbs: crumbs(&console, region, &name, "completeness", &query),
        print: q.print(),
        charts: false,
        report: Some(Report {
            period: month.to_string(),
            signature: None,
        }),
    }
    .render(body))
}

/// `/completeness/{region}/reports.csv?period=`.
pub(super) async fn table_csv(
    State(console): State<Shared>,
    viewer: Viewer,
    Path((code, file)): Path<(String, String)>,
    UrlQuery(q): UrlQuery<ViewQuery>,
) -> Result<Response, Refusal> {
    let lang = viewer.lang;
    let (region, month) = params::view(&console, &viewer, Action::Read, &code, &q)?;
    if file != "reports.csv" {
        return Err(params::bad_request(
            lang,
            &format!("table ({file}): reports.csv"),
        ));
    }
    let c = console.clone();
    let report = params::ask(lang, move || load(&c, region, month)).await?;
    Ok(
        grid(&console, lang.t(), &report, month)
            .csv_response(&format!("{region}-{month}"), q.bom()),
    )
}
