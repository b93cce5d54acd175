//! `tallytree audit revisions`: the signed revisions of a region's summary,
//! checked with the unit's public key through the standard DSSE JSON form.

use std::{path::Path, process::ExitCode};

use anyhow::Result;
use chrono::{DateTime, Utc};
use tallytree_proto::{
    Digest, PublicKey, RegionCode,
    envelope::{self, DsseJson},
    pb::{self, audit_client::AuditClient},
    statement::{self, Statement},
};

use crate::conn::{Conn, explain};

/// Lists (or prints as DSSE JSON) and verifies a region's revisions.
pub async fn revisions(
    conn: &Conn,
    region: Option<RegionCode>,
    period: &str,
    key: Option<&Path>,
    dsse_json: bool,
) -> Result<ExitCode> {
    let key = key.map(PublicKey::load).transpose()?;
    let mut client = AuditClient::new(conn.connect().await?);
    let envelopes = client
        .revisions(pb::RevisionsRequest {
            region: region.map(|r| r.to_string()).unwrap_or_default(),
            period: period.to_owned(),
        })
        .await
        .map_err(explain)?
        .into_inner()
        .summaries;
    let mut failures = 0;
    for env in &envelopes {
        // Verify what a third party would: the JSON form, parsed back.
        let json = DsseJson::from_envelope(env);
        let verdict = key.as_ref().map(|k| {
            json.to_envelope()
                .and_then(|e| envelope::verify(&e, pb::Summary::PAYLOAD_TYPE, k))
        });
        if matches!(verdict, Some(Err(_))) {
            failures += 1;
        }
        if dsse_json {
            println!("{}", serde_json::to_string(&json)?);
            continue;
        }
        let summary: pb::Summary = statement::peek_unverified(env)?;
        let issued = DateTime::<Utc>::from_timestamp_millis(summary.issued_at_ms)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        let status = match verdict {
            None => "not checked (pass --key UNIT.pub)".to_owned(),
            Some(Ok(())) => "signature verified".to_owned(),
            Some(Err(e)) => format!("SIGNATURE INVALID: {e}"),
        };
        println!(
            "{} {} {} revision {:>3}  digest {}  issued {}  {}",
            summary.region,
            summary.name,
            summary.period,
            summary.revision,
            Digest::of(&env.payload).to_hex(),
            issued,
            status
        );
    }
    if envelopes.is_empty() {
        eprintln!("no signed revisions for {period}");
    }
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
