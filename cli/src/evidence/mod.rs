//! Auditing from the command line: export an evidence bundle or an
//! inclusion proof from a node, and verify either offline with nothing but
//! the trust anchor (`tallytree keys export-anchor`).
//!
//! - this module: the trust anchor file, `audit export` and `audit prove`
//!   (the node's stream checked against its trailer before it is kept).
//! - [`dsse_json`]: the DSSE JSON form of a bundle, written and read.
//! - [`mod@verify`]: `audit verify` and `audit verify-proof`, and what they print.

pub mod dsse_json;
mod shown;
pub mod verify;

pub use verify::{VerifyOutput, verify, verify_proof_file};

use std::{fs::File, io::BufWriter, path::Path, process::ExitCode};

use anyhow::{Context, Result, anyhow, bail};
use tallytree_aggregator::{
    bundle::{BundleWriter, TrailerDigest},
    root::{Pinned, RootView},
};
use tallytree_proto::{
    PublicKey, RegionCode,
    envelope::DsseJson,
    pb::{self, audit_client::AuditClient},
};
use tokio_stream::{Stream, StreamExt};

use crate::conn::{Conn, explain};

/// Output format of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// The binary bundle `audit verify` reads.
    Bundle,
    /// Standard DSSE JSON envelopes with the public keys, for any DSSE
    /// verifier (`audit verify` reads it too).
    DsseJson,
}

/// Reads what an auditor pinned: a root of trust (`tallytree root init`
/// writes version 1 as a DSSE JSON envelope), or trust anchors (PEM public
/// keys, each after a comment line `# tallytree trust anchor: CODE NAME`
/// naming its region).
pub fn load_anchors(path: &Path) -> Result<Pinned> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    if text.trim_start().starts_with('{') {
        let env = DsseJson::parse(&text)
            .and_then(|j| j.to_envelope())
            .with_context(|| format!("{}: not a root of trust", path.display()))?;
        let root = RootView::pinned(&env)
            .with_context(|| format!("{}: the root does not verify", path.display()))?;
        return Ok(Pinned::Root(Box::new(root)));
    }
    parse_anchors(&text, path).map(Pinned::Keys)
}

/// The trust anchors of an anchor file's text (`path` names it in errors).
pub fn parse_anchors(text: &str, path: &Path) -> Result<Vec<(RegionCode, PublicKey)>> {
    let mut anchors = Vec::new();
    let mut region = None;
    let mut block = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# tallytree trust anchor:") {
            region = rest
                .split_whitespace()
                .next()
                .and_then(|c| RegionCode::parse(c).ok());
        } else if line.starts_with("-----BEGIN") {
            block = format!("{line}\n");
        } else if line.starts_with("-----END") {
            block.push_str(line);
            let key = PublicKey::parse(&block)
                .with_context(|| format!("{}: not an Ed25519 public key", path.display()))?;
            let r = region.take().with_context(|| {
                format!(
                    "{}: the key has no \"# tallytree trust anchor: CODE\" line naming its region",
                    path.display()
                )
            })?;
            anchors.push((r, key));
        } else if !block.is_empty() {
            block.push_str(line);
            block.push('\n');
        }
    }
    if anchors.is_empty() {
        bail!("{}: no trust anchor found", path.display());
    }
    Ok(anchors)
}

/// Streams a bundle from the node into `output`.
pub async fn export(
    conn: &Conn,
    region: Option<RegionCode>,
    period: &str,
    output: &Path,
    format: ExportFormat,
) -> Result<ExitCode> {
    let mut client = AuditClient::new(conn.connect().await?).max_decoding_message_size(64 << 20);
    let stream = client
        .export_evidence(pb::ExportEvidenceRequest {
            region: region.map(|r| r.to_string()).unwrap_or_default(),
            period: period.to_owned(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    let counts = save(stream, output, format).await?;
    println!(
        "wrote {}: {} summaries, {} enrolments, {} receipts",
        output.display(),
        counts[0],
        counts[1],
        counts[2]
    );
    Ok(ExitCode::SUCCESS)
}

/// The node's stream checked against its own trailer as it arrives: a
/// stream cut short (no trailer) or altered on the way (count or digest
/// differ) is not kept.
#[derive(Debug, Default)]
struct StreamCheck {
    /// Count and digest of the items received before the trailer.
    digest: TrailerDigest,
    /// The trailer came and checked out.
    done: bool,
}

impl StreamCheck {
    fn item(&mut self, item: &pb::EvidenceItem) -> Result<()> {
        if self.done {
            bail!("the node's stream goes on after its trailer");
        }
        match &item.item {
            Some(pb::evidence_item::Item::Trailer(t)) => {
                // The trailer digests the items as the node encoded them;
                // prost encodes a decoded item back to the same bytes (and an
                // item with fields this build does not know fails the check).
                std::mem::take(&mut self.digest)
                    .check(t)
                    .map_err(|e| anyhow!("the node's stream does not match its {e}"))?;
                self.done = true;
            }
            _ => {
                self.digest.add(item);
            }
        }
        Ok(())
    }

    fn finish(&self) -> Result<()> {
        if !self.done {
            bail!(
                "the node's stream ended after {} items, before its trailer (truncated)",
                self.digest.items()
            );
        }
        Ok(())
    }
}

/// Writes a stream of bundle items to `output`, checking it against its
/// trailer; returns how many summaries, enrolments and receipts it held.
/// On any failure the partial file is removed.
async fn save(
    stream: impl Stream<Item = Result<pb::EvidenceItem, tonic::Status>> + Unpin,
    output: &Path,
    format: ExportFormat,
) -> Result<[u64; 3]> {
    let result = write_checked(stream, output, format).await;
    if let Err(e) = result {
        let removed = std::fs::remove_file(output).is_ok();
        let what = if removed { "; nothing kept" } else { "" };
        return Err(e.context(format!("{}: export incomplete{what}", output.display())));
    }
    result
}

async fn write_checked(
    mut stream: impl Stream<Item = Result<pb::EvidenceItem, tonic::Status>> + Unpin,
    output: &Path,
    format: ExportFormat,
) -> Result<[u64; 3]> {
    let file = BufWriter::new(
        File::create(output).with_context(|| format!("{}: cannot create", output.display()))?,
    );
    let mut check = StreamCheck::default();
    let mut counts = [0u64; 3];
    match format {
        ExportFormat::Bundle => {
            let mut w = BundleWriter::new(file);
            while let Some(item) = stream.next().await {
                let item = item.map_err(explain)?;
                check.item(&item)?;
                count(&item, &mut counts);
                w.write(&item)?;
            }
            check.finish()?;
            w.finish()?;
        }
        ExportFormat::DsseJson => {
            let mut doc = dsse_json::Writer::default();
            while let Some(item) = stream.next().await {
                let item = item.map_err(explain)?;
                check.item(&item)?;
                count(&item, &mut counts);
                doc.push(item);
            }
            check.finish()?;
            doc.finish(file)?;
        }
    }
    Ok(counts)
}

fn count(item: &pb::EvidenceItem, counts: &mut [u64; 3]) {
    use pb::evidence_item::Item;
    match &item.item {
        Some(Item::Summary(_)) => counts[0] += 1,
        Some(Item::Enrolment(_)) => counts[1] += 1,
        Some(Item::Receipt(_)) => counts[2] += 1,
        _ => {}
    }
}

/// Fetches an inclusion proof.
pub async fn prove(
    conn: &Conn,
    region: RegionCode,
    period: &str,
    output: &Path,
) -> Result<ExitCode> {
    let mut client = AuditClient::new(conn.connect().await?);
    let stream = client
        .prove(pb::ProveRequest {
            region: region.to_string(),
            period: period.to_owned(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    save(stream, output, ExportFormat::Bundle).await?;
    println!("wrote {}", output.display());
    Ok(ExitCode::SUCCESS)
}
