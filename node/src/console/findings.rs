//! The findings view: what needs checking (需核实) in a region and below it,
//! selected by period, rule and severity, each row leading to the summary
//! it concerns.

use axum::{
    extract::{Path, Query as UrlQuery, State},
    response::Response,
};
use maud::html;
use serde::Deserialize;
use tallytree_aggregator::findings::{Filter, Rule, Severity, format_value};
use tallytree_proto::{RegionCode, pb};

use super::{
    Console, Refusal, Shared,
    figures::crumbs,
    lang::{Lang, Words},
    params,
    session::Viewer,
    shell::Page,
    table::{Cell, Row, Table},
};
use crate::{access::Action, query::QueryError};

/// The selection in the URL; each empty or absent means "every".
#[derive(Debug, Default, Deserialize)]
pub(super) struct FindingsQuery {
    period: Option<String>,
    rule: Option<String>,
    severity: Option<String>,
    bom: Option<String>,
    print: Option<String>,
}

impl FindingsQuery {
    fn filter(&self, lang: Lang, region: RegionCode) -> Result<Filter, Refusal> {
        let field = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_owned();
        let mut filter = Filter::parse(
            "",
            &field(&self.period),
            &field(&self.rule),
            &field(&self.severity),
        )
        .map_err(|e| params::query_error(lang, &QueryError::from(e)))?;
        filter.region = Some(region);
        Ok(filter)
    }

    /// The selection as a query string, for links and the CSV.
    fn query_string(&self) -> String {
        [
            ("period", &self.period),
            ("rule", &self.rule),
            ("severity", &self.severity),
        ]
        .iter()
        .filter_map(|(k, v)| {
            v.as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", super::session::url_encode(v)))
        })
        .collect::<Vec<_>>()
        .join("&")
    }
}

fn load(console: &Console, filter: Filter) -> Result<pb::FindingsResponse, QueryError> {
    console.query.findings(&filter)
}

fn rule_label(lang: Lang, id: &str) -> String {
    Rule::from_id(id).map_or_else(
        || id.to_owned(),
        |r| match lang {
            Lang::Zh => r.label().to_owned(),
            Lang::En => r.label_en().to_owned(),
        },
    )
}

fn severity_label(lang: Lang, id: &str) -> String {
    match (lang, Severity::from_id(id)) {
        (Lang::Zh, Some(s)) => s.label().to_owned(),
        _ => id.to_owned(),
    }
}

fn table(lang: Lang, w: &Words, response: &pb::FindingsResponse) -> Table {
    let columns = [
        w.unit,
        w.code,
        w.period,
        w.rule,
        w.severity,
        w.observed,
        w.expected,
        w.statistic,
        w.threshold,
        w.finding_id,
    ];
    let mut t = Table {
        id: "findings",
        caption: w.findings_title.into(),
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        rows: Vec::new(),
    };
    for f in &response.findings {
        let mut unit = f.path.clone();
        if !f.related.is_empty() {
            unit.push_str(&format!(" (= {})", f.related.join(", ")));
        }
        // A month's finding leads to that month's summary; a run or a year
        // to the unit's figures.
        let href = if f.period.len() == 7 {
            format!("/summary/{}/{}", f.region, f.period)
        } else {
            format!("/figures/{}", f.region)
        };
        let severity = Cell::class(
            severity_label(lang, &f.severity),
            if f.severity == "warning" {
                "warning"
            } else {
                "notice"
            },
        );
        t.rows.push(Row {
            cells: vec![
                Cell::link(unit, href),
                Cell::text(f.region.clone()),
                Cell::text(f.period.clone()),
                Cell::text(rule_label(lang, &f.rule)),
                severity,
                Cell::num(format_value(&f.measure, f.observed)),
                Cell::num(format_value(&f.measure, f.expected)),
                Cell::num(format_value(&f.statistic, f.value)),
                Cell::num(format_value(&f.statistic, f.threshold)),
                Cell::text(f.id.clone()),
            ],
            href: None,
            class: "",
        });
    }
    t
}

/// `/findings/{region}?period=&rule=&severity=`.
pub(super) async fn page(
    State(console): State<Shared>,
    viewer: Viewer,
    Path(code): Path<String>,
    UrlQuery(q): UrlQuery<FindingsQuery>,
) -> Result<Response, Refusal> {
    let lang = viewer.lang;
    viewer.require(Action::Read)?;
    let region = params::region(&console, lang, &code)?;
    let filter = q.filter(lang, region)?;
    let c = console.clone();
    let response = params::ask(lang, move || load(&c, filter)).await?;
    let w = lang.t();
    let t = table(lang, w, &response);
    let name = params::unit_name(&console, region);
    let query = q.query_string();
    let base = format!("/findings/{region}");
    let chosen = |v: &Option<String>, option: &str| v.as_deref() == Some(option);
    let body = html! {
        h1 { (name) " · " (w.findings_title) }
        form.period.noprint method="get" action=(base) {
            label for="period" { (w.period) }
            input #period type="text" name="period" placeholder=(w.all_periods)
                value=(q.period.clone().unwrap_or_default());
            select name="rule" aria-label=(w.rule) {
                option value="" { (w.all_rules) }
                @for r in Rule::ALL {
                    option value=(r.id()) selected[chosen(&q.rule, r.id())] {
                        (rule_label(lang, r.id()))
                    }
                }
            }
            select name="severity" aria-label=(w.severity) {
                option value="" { (w.all_severities) }
                @for s in [Severity::Notice, Severity::Warning] {
                    option value=(s.id()) selected[chosen(&q.severity, s.id())] {
                        (severity_label(lang, s.id()))
                    }
                }
            }
            button type="submit" { (w.filter) }
        }
        p.hint { (w.findings_hint) }
        @if response.findings.is_empty() { p.muted #no-findings { (w.findings_none) } }
        @else { (t.render(Some((&base, &query)), w)) }
    };
    Ok(Page {
        viewer: &viewer,
        console: &console,
        title: w.findings_title.into(),
        here: format!("{base}?{query}"),
        crumbs: crumbs(&console, region, &name, "findings", &query),
        print: q.print.as_deref().is_some_and(|v| v != "0"),
        charts: false,
        report: None,
    }
    .render(body))
}

/// `/findings/{region}/findings.csv?…`.
pub(super) async fn table_csv(
    State(console): State<Shared>,
    viewer: Viewer,
    Path((code, file)): Path<(String, String)>,
    UrlQuery(q): UrlQuery<FindingsQuery>,
) -> Result<Response, Refusal> {
    let lang = viewer.lang;
    viewer.require(Action::Read)?;
    let region = params::region(&console, lang, &code)?;
    if file != "findings.csv" {
        return Err(params::bad_request(
            lang,
            &format!("table ({file}): findings.csv"),
        ));
    }
    let filter = q.filter(lang, region)?;
    let c = console.clone();
    let response = params::ask(lang, move || load(&c, filter)).await?;
    Ok(table(lang, lang.t(), &response).csv_response(
        &format!("findings-{region}"),
        q.bom.as_deref().is_some_and(|v| v != "0"),
    ))
}
