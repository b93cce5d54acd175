//! Auditing from the command line: export an evidence bundle or an
//! inclusion proof from a node, and verify either offline with nothing but
//! the trust anchor (`tallytree keys export-anchor`).

use std::{
    fs::File,
    io::{BufReader, BufWriter, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tallytree_aggregator::{
    audit::{AuditReport, Auditor, verify_proof},
    bundle::{BundleError, BundleReader, BundleWriter},
};
use tallytree_proto::{
    PublicKey, RegionCode,
    envelope::DsseJson,
    pb::{self, audit_client::AuditClient},
    statement,
};
use tokio_stream::StreamExt;

use crate::conn::{Conn, explain};

/// Output format of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// The binary bundle `audit verify` reads.
    Bundle,
    /// Standard DSSE JSON envelopes with the public keys, for any DSSE verifier.
    DsseJson,
}

/// Reads trust anchors: PEM public keys, each after a comment line
/// `# tallytree trust anchor: CODE NAME` naming its region.
pub fn load_anchors(path: &Path) -> Result<Vec<(RegionCode, PublicKey)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
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

/// Writes a stream of bundle items to `output`; returns how many
/// summaries, enrolments and receipts it held.
async fn save(
    mut stream: tonic::Streaming<pb::EvidenceItem>,
    output: &Path,
    format: ExportFormat,
) -> Result<[u64; 3]> {
    let file = BufWriter::new(
        File::create(output).with_context(|| format!("{}: cannot create", output.display()))?,
    );
    let mut counts = [0u64; 3];
    match format {
        ExportFormat::Bundle => {
            let mut w = BundleWriter::new(file);
            while let Some(item) = stream.next().await {
                let item = item.map_err(explain)?;
                count(&item, &mut counts);
                w.write(&item)?;
            }
            w.finish()?;
        }
        ExportFormat::DsseJson => write_dsse_json(&mut stream, file, &mut counts).await?,
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

/// One JSON document: the header, the public key of every signer (from the
/// enrolments, plus the exporting node's anchor key when it signed), and
/// every statement as a standard DSSE JSON envelope.
async fn write_dsse_json(
    stream: &mut tonic::Streaming<pb::EvidenceItem>,
    mut out: BufWriter<File>,
    counts: &mut [u64; 3],
) -> Result<()> {
    use pb::evidence_item::Item;
    let mut header = serde_json::Value::Null;
    let mut keys = serde_json::Map::new();
    let mut envelopes = Vec::new();
    while let Some(item) = stream.next().await {
        let item = item.map_err(explain)?;
        count(&item, counts);
        let (kind, env) = match item.item {
            Some(Item::Header(h)) => {
                header = json!({"format": h.format, "region": h.region, "period": h.period, "exported_by": h.exported_by, "exported_at_ms": h.exported_at_ms});
                if let Ok(k) = PublicKey::from_slice(&h.exported_by_key) {
                    keys.insert(k.key_id(), json!({"region": h.exported_by, "public_key": k.to_pem(), "note": "the exporting node's key; check it against your trust anchor"}));
                }
                continue;
            }
            Some(Item::Enrolment(e)) => {
                if let Ok(en) = statement::peek_unverified::<pb::Enrolment>(&e)
                    && let Ok(k) = PublicKey::from_slice(&en.public_key)
                {
                    keys.insert(
                        k.key_id(),
                        json!({"region": en.region, "name": en.name, "public_key": k.to_pem()}),
                    );
                }
                ("enrolment", e)
            }
            Some(Item::Revocation(r)) => ("revocation", r),
            Some(Item::Summary(s)) => ("summary", s),
            Some(Item::Receipt(r)) => ("receipt", r),
            _ => continue,
        };
        envelopes.push(json!({"statement": kind, "envelope": DsseJson::from_envelope(&env)}));
    }
    let doc = json!({
        "header": header,
        "note": "each envelope is a standard DSSE v1 JSON envelope; its signature is Ed25519 over PAE(payloadType, payload); keys are listed by keyid (hex SHA-256 of the raw key); the trust anchor's key comes from the anchor file",
        "keys": keys,
        "envelopes": envelopes,
    });
    serde_json::to_writer_pretty(&mut out, &doc)?;
    out.flush()?;
    Ok(())
}

/// Verification output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyOutput {
    /// Text.
    Table,
    /// JSON.
    Json,
}

fn open(
    path: &Path,
    bar: &ProgressBar,
) -> Result<BundleReader<indicatif::ProgressBarIter<BufReader<File>>>> {
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    Ok(BundleReader::new(
        bar.wrap_read(BufReader::with_capacity(1 << 20, file)),
    ))
}

/// Verifies bundles offline. Exit 0 verified, 1 problems found, 2 unreadable.
pub fn verify(
    files: &[PathBuf],
    trust: &Path,
    output: VerifyOutput,
    all: bool,
) -> Result<ExitCode> {
    let anchors = match load_anchors(trust) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut auditor = Auditor::new(&anchors, threads);
    if !all {
        auditor = auditor.problems_only();
    }
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let bar = ProgressBar::new(total * 2).with_style(
        ProgressStyle::with_template(
            "verifying [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    // Two passes: every file's enrolments first, so the chains are known
    // before any summary; then summaries and receipts.
    use pb::evidence_item::Item;
    for pass in 0..2 {
        for path in files {
            for item in open(path, &bar)? {
                let item = match item {
                    Ok(i) => i,
                    Err(e) => return unreadable(path, &e, &bar),
                };
                let first_pass = matches!(
                    item.item,
                    Some(Item::Enrolment(_)) | Some(Item::Revocation(_))
                );
                let header_of_first =
                    matches!(item.item, Some(Item::Header(_))) && path == &files[0];
                if (pass == 0) == (first_pass || header_of_first) {
                    auditor.feed(item);
                }
            }
        }
    }
    bar.finish_and_clear();
    let report = auditor.finish();
    match output {
        VerifyOutput::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report_json(&report, all))?
        ),
        VerifyOutput::Table => print_report(&report, all),
    }
    Ok(if report.verified() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn unreadable(path: &Path, e: &BundleError, bar: &ProgressBar) -> Result<ExitCode> {
    bar.finish_and_clear();
    eprintln!("error: {}: {e}", path.display());
    Ok(ExitCode::from(2))
}

fn print_report(r: &AuditReport, all: bool) {
    if let Some(h) = &r.header {
        println!(
            "bundle of {} for {}, exported by {}",
            h.region, h.period, h.exported_by
        );
    }
    println!(
        "{} summaries, {} enrolments, {} receipts, {} regions",
        r.summaries,
        r.enrolments,
        r.receipts,
        r.regions.len()
    );
    for p in &r.general {
        println!("✗ {p}");
    }
    for (code, v) in &r.regions {
        if v.problems.is_empty() && !all {
            continue;
        }
        let mark = if v.problems.is_empty() { "✓" } else { "✗" };
        println!(
            "{mark} {} ({code}) · {} summaries · children {}/{}",
            r.path(*code),
            v.summaries,
            v.reported,
            v.expected
        );
        for p in &v.problems {
            println!("    {p}");
        }
    }
    if r.verified() {
        println!(
            "VERIFIED: every signature, enrolment chain, total, completeness count and receipt checks out"
        );
    } else {
        println!("NOT VERIFIED: {} problems", r.problem_count());
    }
}

fn report_json(r: &AuditReport, all: bool) -> serde_json::Value {
    let regions: Vec<_> = r
        .regions
        .iter()
        .filter(|(_, v)| all || !v.problems.is_empty())
        .map(|(code, v)| {
            json!({
                "region": code.to_string(),
                "name": r.name(*code),
                "path": r.path(*code),
                "summaries": v.summaries,
                "children_reported": v.reported,
                "children_expected": v.expected,
                "verified": v.problems.is_empty(),
                "problems": v.problems,
            })
        })
        .collect();
    json!({
        "verified": r.verified(),
        "header": r.header.as_ref().map(|h| json!({"region": h.region, "period": h.period, "exported_by": h.exported_by})),
        "summaries": r.summaries,
        "enrolments": r.enrolments,
        "receipts": r.receipts,
        "problems": r.problem_count(),
        "general": r.general,
        "regions": regions,
    })
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

/// Verifies an inclusion proof offline.
pub fn verify_proof_file(path: &Path, trust: &Path) -> Result<ExitCode> {
    let anchors = match load_anchors(trust) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let items: Result<Vec<_>, _> = BundleReader::new(BufReader::new(file)).collect();
    let items = match items {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return Ok(ExitCode::from(2));
        }
    };
    match verify_proof(items, &anchors) {
        Ok(p) => {
            let c = p.unit.total.case_totals();
            println!(
                "VERIFIED: {} ({}) {} revision {}: registered {}, resolved {}, escalated {}, in progress {}",
                p.unit.name,
                p.unit.region,
                p.unit.period,
                p.unit.revision,
                c.registered,
                c.resolved,
                c.escalated,
                c.in_progress
            );
            let chain: Vec<String> = p
                .chain
                .iter()
                .map(|v| format!("{} r{}", v.name, v.revision))
                .collect();
            println!("counted, by digest, in: {}", chain.join(" › "));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("NOT VERIFIED: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
