//! Where a figure comes from: every revision of a summary held here (signed
//! at, key id, digest, verified by this node, counted by the parent), its
//! DSSE JSON, and for the auditor role the inclusion proof of the unit and
//! the evidence bundle of a region (the same files `tallytree audit prove`
//! and `audit export` write, which `audit verify` checks offline).

use axum::{
    body::{Body, Bytes},
    extract::{Path, Query as UrlQuery, State},
    http::header,
    response::{IntoResponse, Response},
};
use maud::html;
use prost::Message;
use tallytree_proto::{PeriodRange, envelope::DsseJson, pb};

use super::{
    Refusal, Shared,
    figures::crumbs,
    params::{self, ViewQuery, local_time},
    session::Viewer,
    shell::Page,
    table::{Cell, Table},
};
use crate::{access::Action, query::QueryError};

/// `/summary/{region}/{month}`.
pub(super) async fn page(
    State(console): State<Shared>,
    viewer: Viewer,
    Path((code, period)): Path<(String, String)>,
) -> Result<Response, Refusal> {
    let lang = viewer.lang;
    let (region, month) = params::region_month(&console, &viewer, Action::Read, &code, &period)?;
    let c = console.clone();
    let (held, counted) = params::ask(lang, move || c.query.history(region, month)).await?;
    let w = lang.t();
    let name = held
        .last()
        .map(|h| h.view.name.clone())
        .or_else(|| console.ctx.trust().name_of(region).map(str::to_owned))
        .unwrap_or_else(|| region.to_string());
    let mut t = Table::new(
        "revisions",
        w.revisions,
        &[
            w.revision,
            w.signed_at,
            w.received_at,
            w.signer,
            w.key_id,
            w.digest,
            w.registered,
            w.resolved,
            w.verified,
            w.counted,
        ],
    );
    for h in held.iter().rev() {
        let key = h
            .envelope
            .signatures
            .first()
            .map(|s| s.keyid.clone())
            .unwrap_or_default();
        let c = h.view.total.case_totals();
        t.push(
            vec![
                Cell::num(h.view.revision),
                Cell::text(local_time(&console, h.view.issued_at_ms)),
                Cell::text(local_time(&console, h.received_at_ms)),
                Cell::text(h.view.name.clone()),
                Cell::text(key),
                Cell::text(h.digest.clone()),
                Cell::num(c.registered),
                Cell::num(c.resolved),
                if h.verified {
                    Cell::class(w.verified_yes, "ok")
                } else {
                    Cell::class(w.verified_no, "warn")
                },
                Cell::text(if counted == Some(h.view.revision) {
                    "✓"
                } else {
                    ""
                }),
            ],
            None,
        );
    }
    let auditor = viewer.may(Action::Audit);
    let query = format!("period={month}");
    let body = html! {
        h1 { (name) " · " (month.to_string()) " · " (w.trust_title) }
        @if held.is_empty() {
            p.warn { (w.no_summary) }
        } @else {
            p.downloads {
                a.download href={ "/summary/" (region) "/" (month) "/dsse.json" } download { (w.download_dsse) }
                @if auditor {
                    " · " a.download href={ "/proof/" (region) "/" (month) } download { (w.download_proof) }
                    " · " a.download href={ "/evidence/" (region) "?period=" (month) } download { (w.download_bundle) }
                } @else {
                    " · " span.muted { (w.auditor_only) }
                }
            }
            (t.render(None, w))
        }
    };
    Ok(Page {
        viewer: &viewer,
        console: &console,
        title: w.trust_title.into(),
        here: format!("/summary/{region}/{month}"),
        crumbs: crumbs(&console, region, &name, "figures", &query),
        print: false,
        charts: false,
        report: None,
    }
    .render(body))
}

/// `/summary/{region}/{month}/dsse.json`: the latest revision as a DSSE v1
/// JSON envelope, for any DSSE verifier.
pub(super) async fn dsse_json(
    State(console): State<Shared>,
    viewer: Viewer,
    Path((code, period)): Path<(String, String)>,
) -> Result<Response, Refusal> {
    let lang = viewer.lang;
    let (region, month) = params::region_month(&console, &viewer, Action::Read, &code, &period)?;
    let c = console.clone();
    let (held, _) = params::ask(lang, move || c.query.history(region, month)).await?;
    let Some(latest) = held.last() else {
        return Err(params::query_error(
            lang,
            &QueryError::NotCounted(format!("{region} has no summary for {month}")),
        ));
    };
    let json =
        serde_json::to_vec_pretty(&DsseJson::from_envelope(&latest.envelope)).unwrap_or_default();
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{region}-{month}-r{}.dsse.json\"",
                    latest.view.revision
                ),
            ),
        ],
        json,
    )
        .into_response())
}

/// Streams evidence items as the bundle file, produced on a blocking
/// thread; a client that goes away stops the producer.
fn item_stream(
    name: String,
    produce: impl FnOnce(&mut dyn FnMut(pb::EvidenceItem) -> bool) -> Result<(), QueryError>
    + Send
    + 'static,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::task::spawn_blocking(move || {
        let mut sink = |item: pb::EvidenceItem| {
            tx.blocking_send(Ok(Bytes::from(item.encode_length_delimited_to_vec())))
                .is_ok()
        };
        if let Err(e) = produce(&mut sink) {
            // The stream ends without its trailer: every reader of the
            // file reports it incomplete.
            tracing::warn!(error = %e, "console evidence download failed");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// `/proof/{region}/{month}`: the inclusion proof of a unit's month in this
/// node's summary. Auditor role.
pub(super) async fn proof(
    State(console): State<Shared>,
    viewer: Viewer,
    Path((code, period)): Path<(String, String)>,
) -> Result<Response, Refusal> {
    let lang = viewer.lang;
    let (region, month) = params::region_month(&console, &viewer, Action::Audit, &code, &period)?;
    // Refused before the download starts, with the reason on a page.
    let c = console.clone();
    let (held, _) = params::ask(lang, move || c.query.history(region, month)).await?;
    if held.is_empty() {
        return Err(params::query_error(
            lang,
            &QueryError::NotCounted(format!("{region} has no summary for {month}")),
        ));
    }
    let evidence = console.evidence.clone();
    Ok(item_stream(
        format!("{region}-{month}.proof"),
        move |sink| evidence.prove(region, month, sink),
    ))
}

/// `/evidence/{region}?period=`: the evidence bundle of a region. Auditor
/// role.
pub(super) async fn bundle(
    State(console): State<Shared>,
    viewer: Viewer,
    Path(code): Path<String>,
    UrlQuery(q): UrlQuery<ViewQuery>,
) -> Result<Response, Refusal> {
    viewer.require(Action::Audit)?;
    let lang = viewer.lang;
    let region = params::region(&console, lang, &code)?;
    let period = q.period.clone().unwrap_or_default();
    let range = PeriodRange::parse(&period)
        .map_err(|e| params::bad_request(lang, &format!("period ({period}): {e}")))?;
    let evidence = console.evidence.clone();
    Ok(item_stream(
        format!("{region}-{range}.bundle"),
        move |sink| evidence.export_evidence(region, range, sink),
    ))
}
