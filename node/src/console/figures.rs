//! The drill-down: a region's figures for a month (KPI tiles with their
//! change against last month and last year, the monthly trend, the split
//! by category, the units below ranked), one level per page, every level
//! its own URL, each chart with its table.

use axum::{
    extract::{Path, Query as UrlQuery, State},
    response::Response,
};
use maud::{Markup, html};
use serde_json::json;
use tallytree_aggregator::{Rates, Tally};
use tallytree_proto::{Category, Month, PeriodRange, RegionCode, pb};

use super::{
    Console, Refusal, Shared,
    lang::Words,
    params::{self, ViewQuery, percent, previous, short, year_before},
    session::Viewer,
    shell::{Page, Report},
    table::{Cell, Table},
};
use crate::access::Action;

/// A region's rows for the 13 months up to the one shown, and its
/// children's.
pub(super) struct Figures {
    /// The month shown.
    pub(super) month: Month,
    /// The region's row.
    pub(super) region: pb::RegionRow,
    /// Its children's rows.
    pub(super) children: Vec<pb::RegionRow>,
}

/// The figures of `region` around `month`, with its children.
pub(super) fn load(
    console: &Console,
    region: RegionCode,
    month: Month,
) -> Result<Figures, crate::query::QueryError> {
    let from = year_before(month).unwrap_or(month);
    let mut rows = console
        .query
        .tally(Some(region), PeriodRange { from, to: month }, 1)?
        .rows;
    let first = rows.remove(0);
    Ok(Figures {
        month,
        region: first,
        children: rows,
    })
}

/// A row's month, if signed.
pub(super) fn month_of(row: &pb::RegionRow, month: Month) -> Option<&pb::MonthFigures> {
    let p = month.to_string();
    row.months.iter().find(|m| m.period == p)
}

/// The tally of a signed month.
pub(super) fn tally(m: &pb::MonthFigures) -> Tally {
    m.total
        .as_ref()
        .and_then(|t| Tally::from_pb(t, "total").ok())
        .unwrap_or_default()
}

/// One KPI: its value this month, last month and a year before.
struct Kpi {
    label: &'static str,
    value: Option<f64>,
    prev: Option<f64>,
    year: Option<f64>,
    rate: bool,
}

fn kpis(f: &Figures, w: &Words) -> Vec<Kpi> {
    let at = |m: Option<Month>| m.and_then(|m| month_of(&f.region, m)).map(tally);
    let (now, prev, year) = (
        at(Some(f.month)),
        at(previous(f.month)),
        at(year_before(f.month)),
    );
    let count = |t: &Option<Tally>, pick: fn(&Tally) -> u64| t.as_ref().map(|t| pick(t) as f64);
    let rate = |t: &Option<Tally>, pick: fn(&Rates) -> Option<f64>| {
        t.as_ref().and_then(|t| pick(&t.rates()))
    };
    let c = |label, pick: fn(&Tally) -> u64| Kpi {
        label,
        value: count(&now, pick),
        prev: count(&prev, pick),
        year: count(&year, pick),
        rate: false,
    };
    let r = |label, pick: fn(&Rates) -> Option<f64>| Kpi {
        label,
        value: rate(&now, pick),
        prev: rate(&prev, pick),
        year: rate(&year, pick),
        rate: true,
    };
    vec![
        c(w.registered, |t| t.case_totals().registered),
        c(w.resolved, |t| t.case_totals().resolved),
        r(w.resolution, |r| r.resolution),
        r(w.on_time_rate, |r| r.on_time),
        r(w.escalation, |r| r.escalation),
        r(w.task_completion, |r| r.task_completion),
    ]
}

/// The change of a KPI: in percent for counts, in percentage points for
/// rates; "—" where either side is undefined (or a count was 0).
fn change(k: &Kpi, base: Option<f64>) -> (String, &'static str) {
    match (k.value, base) {
        (Some(v), Some(b)) if k.rate => {
            let pp = (v - b) * 100.0;
            (format!("{pp:+.1} pp"), direction(pp))
        }
        (Some(v), Some(b)) if b > 0.0 => {
            let pct = (v - b) / b * 100.0;
            (format!("{pct:+.1}%"), direction(pct))
        }
        _ => ("—".into(), "flat"),
    }
}

fn direction(x: f64) -> &'static str {
    if x > 0.05 {
        "up"
    } else if x < -0.05 {
        "down"
    } else {
        "flat"
    }
}

fn kpi_tiles(f: &Figures, w: &Words) -> Markup {
    html! {
        section.kpis {
            @for k in kpis(f, w) {
                @let (mom, mom_dir) = change(&k, k.prev);
                @let (yoy, yoy_dir) = change(&k, k.year);
                div.kpi {
                    div.label { (k.label) }
                    div.value {
                        @if k.rate { (percent(k.value)) }
                        @else { (k.value.map_or("—".into(), |v| format!("{v:.0}"))) }
                    }
                    div.changes {
                        span class={ "chg " (mom_dir) } { (w.mom) " " (mom) }
                        span class={ "chg " (yoy_dir) } { (w.yoy) " " (yoy) }
                    }
                }
            }
        }
    }
}

/// The 12 months up to the one shown.
pub(super) fn trend_table(f: &Figures, w: &Words) -> Table {
    let mut t = Table::new(
        "trend",
        w.trend,
        &[
            w.month,
            w.registered,
            w.resolved,
            w.escalated,
            w.resolution,
            w.on_time_rate,
            w.task_completion,
            w.revision,
        ],
    );
    let from = Month::new(f.month.year() - 1, f.month.month()).map_or(f.month, Month::next);
    for m in (PeriodRange { from, to: f.month }).months() {
        let Some(mf) = month_of(&f.region, m) else {
            t.push(
                vec![
                    Cell::text(m.to_string()),
                    Cell::num("—"),
                    Cell::num("—"),
                    Cell::num("—"),
                    Cell::num("—"),
                    Cell::num("—"),
                    Cell::num("—"),
                    Cell::text("—"),
                ],
                None,
            );
            continue;
        };
        let tl = tally(mf);
        let (c, r) = (tl.case_totals(), tl.rates());
        t.push(
            vec![
                Cell::text(m.to_string()),
                Cell::num(c.registered),
                Cell::num(c.resolved),
                Cell::num(c.escalated),
                Cell::num(percent(r.resolution)),
                Cell::num(percent(r.on_time)),
                Cell::num(percent(r.task_completion)),
                Cell::num(mf.revision),
            ],
            None,
        );
    }
    t
}

/// The month's cases by category.
pub(super) fn category_table(f: &Figures, w: &Words) -> Table {
    let mut t = Table::new(
        "categories",
        w.categories,
        &[
            w.category,
            w.registered,
            w.resolved,
            w.escalated,
            w.in_progress,
            w.resolution,
        ],
    );
    let tl = month_of(&f.region, f.month).map(tally).unwrap_or_default();
    for c in Category::ALL {
        let n = tl.category(c);
        let rate = (n.registered > 0).then(|| n.resolved as f64 / n.registered as f64);
        t.push(
            vec![
                Cell::text(category_name(c, w)),
                Cell::num(n.registered),
                Cell::num(n.resolved),
                Cell::num(n.escalated),
                Cell::num(n.in_progress),
                Cell::num(percent(rate)),
            ],
            None,
        );
    }
    t
}

fn category_name(c: Category, w: &Words) -> String {
    if w.html_lang == "en" {
        c.code().replace('_', " ")
    } else {
        c.label().to_owned()
    }
}

/// The units below, ranked by resolution (undefined last), with where
/// each figure comes from.
pub(super) fn ranking_table(f: &Figures, w: &Words, console: &Console) -> Table {
    let mut t = Table::new(
        "units",
        w.ranking,
        &[
            w.rank,
            w.unit,
            w.code,
            w.registered,
            w.resolved,
            w.resolution,
            w.on_time_rate,
            w.escalation,
            w.task_completion,
            w.reported,
            w.revision,
            w.signed_at,
            w.key_id,
            w.verified,
        ],
    );
    let mut ranked: Vec<(&pb::RegionRow, Option<&pb::MonthFigures>)> = f
        .children
        .iter()
        .map(|c| (c, month_of(c, f.month)))
        .collect();
    let resolution = |m: Option<&pb::MonthFigures>| m.and_then(|m| tally(m).rates().resolution);
    ranked.sort_by(|a, b| {
        let (ra, rb) = (resolution(a.1), resolution(b.1));
        rb.partial_cmp(&ra)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| ra.is_none().cmp(&rb.is_none()))
            .then_with(|| a.0.region.cmp(&b.0.region))
    });
    let period = f.month.to_string();
    for (i, (row, m)) in ranked.iter().enumerate() {
        let href = format!("/figures/{}?period={period}", row.region);
        let Some(m) = m else {
            let mut cells = vec![
                Cell::num("—"),
                Cell::link(row.name.clone(), href.clone()),
                Cell::text(row.region.clone()),
            ];
            cells.extend((0..10).map(|_| Cell::num("—")));
            cells.push(Cell::class(w.status_missing, "missing"));
            t.rows.push(super::table::Row {
                cells,
                href: Some(href),
                class: "missing",
            });
            continue;
        };
        let tl = tally(m);
        let (c, r) = (tl.case_totals(), tl.rates());
        t.push(
            vec![
                Cell::num(i + 1),
                Cell::link(row.name.clone(), href.clone()),
                Cell::text(row.region.clone()),
                Cell::num(c.registered),
                Cell::num(c.resolved),
                Cell::num(percent(r.resolution)),
                Cell::num(percent(r.on_time)),
                Cell::num(percent(r.escalation)),
                Cell::num(percent(r.task_completion)),
                Cell::num(format!("{}/{}", m.children_reported, m.children_expected)),
                Cell::link(
                    m.revision.to_string(),
                    format!("/summary/{}/{period}", row.region),
                ),
                Cell::text(params::local_time(console, m.issued_at_ms)),
                Cell::text(short(&m.key_id)),
                if m.verified {
                    Cell::class(w.verified_yes, "ok")
                } else {
                    Cell::class(w.verified_no, "warn")
                },
            ],
            Some(href),
        );
    }
    t
}

/// A chart drawn by the page script from the data it carries.
pub(super) fn chart(id: &str, spec: serde_json::Value) -> Markup {
    html! {
        div.chart id={ "c-" (id) } {}
        script type="application/json" class="chart-spec" data-target={ "c-" (id) } {
            (maud::PreEscaped(spec.to_string().replace("</", "<\\/")))
        }
    }
}

fn number(cell: &Cell) -> serde_json::Value {
    let t = cell.text.trim_end_matches('%');
    t.parse::<f64>()
        .map_or(serde_json::Value::Null, |v| json!(v))
}

/// The charts' data from their tables: the same figures, never computed
/// twice.
fn trend_chart(t: &Table, w: &Words) -> Markup {
    let col = |i: usize| {
        t.rows
            .iter()
            .map(|r| number(&r.cells[i]))
            .collect::<Vec<_>>()
    };
    let months: Vec<&str> = t.rows.iter().map(|r| r.cells[0].text.as_str()).collect();
    chart(
        "trend",
        json!({
            "kind": "trend",
            "x": months,
            "series": [
                {"name": w.registered, "type": "bar", "data": col(1)},
                {"name": w.resolved, "type": "bar", "data": col(2)},
                {"name": w.resolution, "type": "line", "percent": true, "data": col(4)},
            ],
        }),
    )
}

fn category_chart(t: &Table, w: &Words) -> Markup {
    chart(
        "categories",
        json!({
            "kind": "bars",
            "x": t.rows.iter().map(|r| r.cells[0].text.as_str()).collect::<Vec<_>>(),
            "series": [
                {"name": w.registered, "type": "bar", "data": t.rows.iter().map(|r| number(&r.cells[1])).collect::<Vec<_>>()},
                {"name": w.resolved, "type": "bar", "data": t.rows.iter().map(|r| number(&r.cells[2])).collect::<Vec<_>>()},
            ],
        }),
    )
}

fn ranking_chart(t: &Table, w: &Words) -> Markup {
    let signed: Vec<_> = t.rows.iter().filter(|r| r.class != "missing").collect();
    chart(
        "units",
        json!({
            "kind": "ranking",
            "x": signed.iter().map(|r| r.cells[1].text.as_str()).collect::<Vec<_>>(),
            "series": [
                {"name": w.resolution, "type": "bar", "percent": true, "data": signed.iter().map(|r| number(&r.cells[5])).collect::<Vec<_>>()},
            ],
        }),
    )
}

/// The breadcrumb from the node's region down to `region`.
pub(super) fn crumbs(
    console: &Console,
    region: RegionCode,
    name: &str,
    path: &str,
    query: &str,
) -> Vec<(String, String)> {
    let node = console.ctx.identity.region;
    let mut chain: Vec<RegionCode> = region.ancestry().filter(|r| r.is_within(node)).collect();
    chain.sort_by_key(|r| r.level());
    if chain.last() != Some(&region) {
        chain.push(region);
    }
    chain
        .into_iter()
        .map(|r| {
            let label = if r == region {
                name.to_owned()
            } else if r == node {
                console.ctx.identity.name.clone()
            } else {
                console
                    .ctx
                    .trust()
                    .name_of(r)
                    .map_or_else(|| r.to_string(), str::to_owned)
            };
            (label, format!("/{path}/{r}?{query}"))
        })
        .collect()
}

/// The period picker.
pub(super) fn period_form(w: &Words, action: &str, month: Month, print_href: &str) -> Markup {
    html! {
        form.period.noprint method="get" action=(action) {
            label for="period" { (w.period) }
            input #period type="month" name="period" value=(month.to_string());
            button type="submit" { (w.show) }
            a.print href=(print_href) { (w.print) }
        }
    }
}

/// `/figures/{region}?period=`.
pub(super) async fn page(
    State(console): State<Shared>,
    viewer: Viewer,
    Path(code): Path<String>,
    UrlQuery(q): UrlQuery<ViewQuery>,
) -> Result<Response, Refusal> {
    let lang = viewer.lang;
    let (region, month) = params::view(&console, &viewer, Action::Read, &code, &q)?;
    let c = console.clone();
    let f = params::ask(lang, move || load(&c, region, month)).await?;
    let w = lang.t();
    let (trend, categories, ranking) = (
        trend_table(&f, w),
        category_table(&f, w),
        ranking_table(&f, w, &console),
    );
    let shown = month_of(&f.region, month);
    let query = format!("period={month}");
    let base = format!("/figures/{region}");
    let body = html! {
        h1 { (f.region.name) " · " (month.to_string()) }
        (period_form(w, &base, month, &format!("{base}?{query}&print=1")))
        (provenance(&console, w, region, month, shown, f.region.pending))
        (kpi_tiles(&f, w))
        div.grid {
            section.panel {
                h2 { (w.trend) }
                (trend_chart(&trend, w))
                (trend.render(Some((&base, &query)), w))
            }
            section.panel {
                h2 { (w.categories) }
                (category_chart(&categories, w))
                (categories.render(Some((&base, &query)), w))
            }
        }
        section.panel.wide {
            h2 { (w.ranking) }
            @if ranking.rows.is_empty() {
                p.muted { (w.no_children) }
            } @else {
                (ranking_chart(&ranking, w))
                (ranking.render(Some((&base, &query)), w))
                p.noprint { a href={ "/export/" (region) "?" (query) } { (w.export_subtree) } }
            }
        }
    };
    Ok(Page {
        viewer: &viewer,
        console: &console,
        title: f.region.name.clone(),
        here: format!("{base}?{query}"),
        crumbs: crumbs(&console, region, &f.region.name, "figures", &query),
        print: q.print(),
        charts: true,
        report: Some(Report {
            period: month.to_string(),
            signature: shown.map(|m| (m.revision, m.digest.clone(), m.key_id.clone())),
        }),
    }
    .render(body))
}

/// Where the shown figures come from.
pub(super) fn provenance(
    console: &Console,
    w: &Words,
    region: RegionCode,
    month: Month,
    shown: Option<&pb::MonthFigures>,
    pending: bool,
) -> Markup {
    html! {
        p.provenance {
            @if let Some(m) = shown {
                span { (w.source) "：" }
                a href={ "/summary/" (region) "/" (month) } { (w.revision) " " (m.revision) }
                " · " (w.signed_at) " " (params::local_time(console, m.issued_at_ms))
                " · " (w.key_id) " " code { (short(&m.key_id)) }
                " · " (w.digest) " " code { (short(&m.digest)) }
                " · "
                @if m.verified { span.ok { (w.verified_yes) } } @else { span.warn { (w.verified_no) } }
                @if pending { " · " span.warn { (w.pending) } }
            } @else {
                span.warn { (w.no_summary) }
            }
        }
    }
}

/// `/figures/{region}/{table}.csv?period=`: one of the page's tables.
pub(super) async fn table_csv(
    State(console): State<Shared>,
    viewer: Viewer,
    Path((code, file)): Path<(String, String)>,
    UrlQuery(q): UrlQuery<ViewQuery>,
) -> Result<Response, Refusal> {
    let lang = viewer.lang;
    let (region, month) = params::view(&console, &viewer, Action::Read, &code, &q)?;
    let c = console.clone();
    let f = params::ask(lang, move || load(&c, region, month)).await?;
    let w = lang.t();
    let table = match file.as_str() {
        "trend.csv" => trend_table(&f, w),
        "categories.csv" => category_table(&f, w),
        "units.csv" => ranking_table(&f, w, &console),
        other => {
            return Err(params::bad_request(
                lang,
                &format!("table ({other}): one of trend.csv, categories.csv, units.csv"),
            ));
        }
    };
    Ok(table.csv_response(&format!("{region}-{month}"), q.bom()))
}
