//! `tallytree audit verify` and `audit verify-proof`: offline verification
//! with the trust anchor only: which form a file is in, reading it through
//! the auditor, and the exit code. What is printed is `shown`'s. Every
//! figure, name and period in a verdict comes from signed summaries that
//! verified; the bundle's header is unsigned and is shown as a claim, checked.

use std::{
    fs::File,
    io::{BufReader, Read},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tallytree_aggregator::{
    audit::{Auditor, verify_proof},
    bundle::{BundleError, BundleReader},
};
use tallytree_proto::pb;

use super::{
    dsse_json, load_anchors,
    shown::{print_proof, print_report, report_json},
};

/// Verification output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyOutput {
    /// Text.
    Table,
    /// JSON.
    Json,
}

/// A file to verify.
enum Input {
    /// A binary bundle, streamed (twice: keys first, then the rest).
    Bundle(PathBuf),
    /// The DSSE JSON export, read whole: the header and keys, then the rest.
    Json(Vec<pb::EvidenceItem>, Vec<pb::EvidenceItem>),
}

/// Whether an item goes in the first pass: every file's roots, enrolments and
/// revocations, so the chains are known before any summary, and the first
/// file's header (the claim the summaries are checked against).
fn first_pass(item: &pb::EvidenceItem, first_file: bool) -> bool {
    use pb::evidence_item::Item;
    match item.item {
        Some(Item::Root(_)) | Some(Item::Enrolment(_)) | Some(Item::Revocation(_)) => true,
        Some(Item::Header(_)) => first_file,
        _ => false,
    }
}

/// What a file that is not a bundle is, and what to pass instead.
const FORMS: &str =
    "pass the file `tallytree audit export` writes (a bundle, or --format dsse-json)";

/// Reads a file's form: a DSSE JSON export is read whole and checked for
/// shape here; anything else is taken for a bundle and streamed.
fn input(path: &Path, first_file: bool) -> Result<Input, String> {
    let shown = path.display();
    let mut file = File::open(path).map_err(|e| format!("{shown}: cannot open ({e})"))?;
    let mut start = [0u8; 64];
    let n = file
        .read(&mut start)
        .map_err(|e| format!("{shown}: cannot read ({e})"))?;
    if !dsse_json::looks_like_json(&start[..n]) {
        return Ok(Input::Bundle(path.to_owned()));
    }
    let text = std::fs::read(path).map_err(|e| format!("{shown}: cannot read ({e})"))?;
    let items = dsse_json::read(&text).map_err(|e| {
        format!("{shown}: a JSON file, but not the DSSE JSON export of an evidence bundle ({e}); {FORMS}")
    })?;
    let (first, rest) = items
        .into_iter()
        .partition(|item| first_pass(item, first_file));
    Ok(Input::Json(first, rest))
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
    let mut inputs = Vec::new();
    for (i, path) in files.iter().enumerate() {
        match input(path, i == 0) {
            Ok(input) => inputs.push(input),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut auditor = Auditor::pinning(anchors, now_ms, threads);
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
    for pass in 0..2 {
        for (i, input) in inputs.iter_mut().enumerate() {
            match input {
                Input::Bundle(path) => {
                    for item in open(path, &bar)? {
                        let item = match item {
                            Ok(i) => i,
                            Err(e) => return unreadable(path, &e, &bar),
                        };
                        if (pass == 0) == first_pass(&item, i == 0) {
                            auditor.feed(item);
                        }
                    }
                }
                Input::Json(first, rest) => {
                    let items = std::mem::take(if pass == 0 { first } else { rest });
                    for item in items {
                        auditor.feed(item);
                    }
                    bar.inc(std::fs::metadata(&files[i]).map_or(0, |m| m.len()));
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
    match e {
        // Not even the first item reads: some other file. Say what it looks
        // like, not what the decoder choked on.
        BundleError::Corrupt { index: 0, .. } | BundleError::Truncated(0) => eprintln!(
            "error: {}: not an evidence bundle{}: {FORMS}",
            path.display(),
            looks_like(path)
        ),
        _ => eprintln!("error: {}: {e}", path.display()),
    }
    Ok(ExitCode::from(2))
}

/// What a file that is not a bundle seems to be, for the message: " (a
/// PEM key, such as a trust anchor)", " (a text file)", or nothing.
fn looks_like(path: &Path) -> &'static str {
    let mut start = [0u8; 512];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut start))
        .unwrap_or(0);
    let start = &start[..n];
    let text = String::from_utf8_lossy(start);
    if text.contains("-----BEGIN") || text.starts_with("# tallytree trust anchor") {
        " (it is a PEM key, such as a trust anchor or a unit's public key)"
    } else if n > 0 && std::str::from_utf8(start).is_ok() && !start.contains(&0) {
        " (it is a text file)"
    } else {
        ""
    }
}

/// The items of a proof or bundle file, in either form.
fn read_items(path: &Path) -> Result<Vec<pb::EvidenceItem>, String> {
    match input(path, true)? {
        Input::Json(mut first, rest) => {
            first.extend(rest);
            Ok(first)
        }
        Input::Bundle(path) => {
            let file =
                File::open(&path).map_err(|e| format!("{}: cannot open ({e})", path.display()))?;
            BundleReader::new(BufReader::new(file))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{}: {e}", path.display()))
        }
    }
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
    let items = match read_items(path) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(bundle) = not_a_proof(&items) {
        eprintln!(
            "error: {}: {bundle}, not an inclusion proof (`audit prove` writes one); verify it with `tallytree audit verify`",
            path.display()
        );
        return Ok(ExitCode::from(2));
    }
    match verify_proof(items, &anchors, chrono::Utc::now().timestamp_millis()) {
        Ok(p) => {
            print_proof(&p);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("NOT VERIFIED: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// "an evidence bundle of REGION for PERIOD" when the file's header claims
/// more than one month: a bundle, which `verify_proof` would only find
/// broken links in.
fn not_a_proof(items: &[pb::EvidenceItem]) -> Option<String> {
    let header = items.iter().find_map(|i| match &i.item {
        Some(pb::evidence_item::Item::Header(h)) => Some(h),
        _ => None,
    })?;
    let period = tallytree_proto::PeriodRange::parse(&header.period).ok()?;
    (period.len() > 1).then(|| format!("an evidence bundle of {} for {period}", header.region))
}
