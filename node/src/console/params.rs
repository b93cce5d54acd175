//! What a console URL names (a region, a month, the print and CSV options),
//! parsed with the same rules and messages as the gRPC calls, and how
//! figures are written on a page.

use axum::http::StatusCode;
use serde::Deserialize;
use tallytree_proto::{Month, RegionCode};

use super::{Console, Refusal, lang::Lang, session::Viewer};
use crate::{access::Action, query::QueryError};

/// `?period=YYYY-MM&print=1&bom=1` of a view.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ViewQuery {
    /// The month shown; default: the latest month this node has signed.
    pub(super) period: Option<String>,
    /// The print view (A4 monthly report, no animation).
    pub(super) print: Option<String>,
    /// CSV with a UTF-8 byte order mark, for Excel on Chinese Windows.
    pub(super) bom: Option<String>,
    /// How far below the region an export goes.
    pub(super) depth: Option<u32>,
}

impl ViewQuery {
    /// Whether the print view is asked for.
    pub(super) fn print(&self) -> bool {
        self.print.as_deref().is_some_and(|v| v != "0")
    }

    /// Whether a CSV should start with a byte order mark.
    pub(super) fn bom(&self) -> bool {
        self.bom.as_deref().is_some_and(|v| v != "0")
    }
}

/// A 400 page naming the field and the rule.
pub(super) fn bad_request(lang: Lang, message: &str) -> Refusal {
    Refusal::new(lang, StatusCode::BAD_REQUEST, message)
}

/// The page for a query the node cannot answer.
pub(super) fn query_error(lang: Lang, e: &QueryError) -> Refusal {
    let status = match e {
        QueryError::OutsideSubtree { .. } | QueryError::NotCounted(_) => StatusCode::NOT_FOUND,
        QueryError::Depth(_) | QueryError::Filter(_) => StatusCode::BAD_REQUEST,
        QueryError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    let message = match e {
        QueryError::Store(_) => lang.t().store_unavailable.to_owned(),
        other => other.to_string(),
    };
    Refusal::new(lang, status, message)
}

/// The region and month a view names, for a viewer whose role allows
/// `action`.
pub(super) fn view(
    console: &Console,
    viewer: &Viewer,
    action: Action,
    code: &str,
    q: &ViewQuery,
) -> Result<(RegionCode, Month), Refusal> {
    viewer.require(action)?;
    Ok((
        region(console, viewer.lang, code)?,
        month(console, viewer.lang, q)?,
    ))
}

/// A region and a month segment of a path (`/summary/{region}/{month}`),
/// for a viewer whose role allows `action`.
pub(super) fn region_month(
    console: &Console,
    viewer: &Viewer,
    action: Action,
    code: &str,
    period: &str,
) -> Result<(RegionCode, Month), Refusal> {
    viewer.require(action)?;
    Ok((
        region(console, viewer.lang, code)?,
        month_segment(viewer.lang, period)?,
    ))
}

/// Runs a blocking query off the async threads; its error as the page for
/// it.
pub(super) async fn ask<T: Send + 'static>(
    lang: Lang,
    f: impl FnOnce() -> Result<T, QueryError> + Send + 'static,
) -> Result<T, Refusal> {
    super::blocking(f).await?.map_err(|e| query_error(lang, &e))
}

/// The name of `region`: this node's own, or its enrolment's.
pub(super) fn unit_name(console: &Console, region: RegionCode) -> String {
    if region == console.ctx.identity.region {
        console.ctx.identity.name.clone()
    } else {
        console
            .ctx
            .trust()
            .name_of(region)
            .map_or_else(|| region.to_string(), str::to_owned)
    }
}

/// The region a path names, within this node's subtree.
pub(super) fn region(console: &Console, lang: Lang, code: &str) -> Result<RegionCode, Refusal> {
    let region =
        RegionCode::parse(code).map_err(|e| bad_request(lang, &format!("region ({code}): {e}")))?;
    let node = console.ctx.identity.region;
    if !region.is_within(node) {
        return Err(query_error(
            lang,
            &QueryError::OutsideSubtree { region, node },
        ));
    }
    Ok(region)
}

/// The month a view shows: `?period=`, or the latest month this node has
/// signed (this month when none).
pub(super) fn month(console: &Console, lang: Lang, q: &ViewQuery) -> Result<Month, Refusal> {
    if let Some(p) = q.period.as_deref().filter(|p| !p.is_empty()) {
        return Month::parse(p).map_err(|e| bad_request(lang, &format!("period ({p}): {e}")));
    }
    Ok(latest_signed_month(console).unwrap_or_else(|| console.ctx.clock.month()))
}

/// A month path segment.
pub(super) fn month_segment(lang: Lang, s: &str) -> Result<Month, Refusal> {
    Month::parse(s).map_err(|e| bad_request(lang, &format!("period ({s}): {e}")))
}

/// The latest month up to now with a summary of this node's own.
fn latest_signed_month(console: &Console) -> Option<Month> {
    let now = console.ctx.clock.month();
    let region = console.ctx.identity.region;
    let store = console.ctx.ledger.store();
    let mut m = now;
    // Two years back at most: a node that has signed nothing since has
    // nothing to show by default.
    for _ in 0..24 {
        if crate::store::layout::latest_summary(store, region, m)
            .ok()
            .flatten()
            .is_some()
        {
            return Some(m);
        }
        m = previous(m)?;
    }
    None
}

/// The month before `m`.
pub(super) fn previous(m: Month) -> Option<Month> {
    m.index().checked_sub(1).and_then(Month::from_index)
}

/// The same month a year before.
pub(super) fn year_before(m: Month) -> Option<Month> {
    Month::new(m.year() - 1, m.month())
}

/// "—" for an undefined rate, else one decimal and a percent sign.
pub(super) fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "—".into(), |r| format!("{:.1}%", r * 100.0))
}

/// Unix milliseconds as local date and time, `YYYY-MM-DD HH:MM`.
pub(super) fn local_time(console: &Console, ms: i64) -> String {
    match console.ctx.clock.local(ms) {
        Some(t) if ms > 0 => t.format("%Y-%m-%d %H:%M").to_string(),
        _ => "—".into(),
    }
}

/// The first 16 hex digits of a key id or digest, as the CLI shows them.
pub(super) fn short(hex: &str) -> &str {
    &hex[..hex.len().min(16)]
}
