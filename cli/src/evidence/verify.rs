//! `tallytree audit verify` and `audit verify-proof`: offline verification
//! with the trust anchor only, and what it prints. Every figure, name and
//! period in a verdict comes from signed summaries that verified; the
//! bundle's header is unsigned and is shown as a claim, checked.

use std::{
    fs::File,
    io::{BufReader, Read},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use tallytree_aggregator::{
    Tally,
    audit::{AuditReport, Auditor, ProofReport, verify_proof},
    bundle::{BundleError, BundleReader},
};
use tallytree_proto::{RegionCode, pb};

use super::{dsse_json, load_anchors};
use crate::{
    query::{MonthRow, RegionRow, months_table, regions_table, tally_json},
    table::Table,
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

/// Whether an item goes in the first pass: every file's enrolments and
/// revocations, so the chains are known before any summary, and the first
/// file's header (the claim the summaries are checked against).
fn first_pass(item: &pb::EvidenceItem, first_file: bool) -> bool {
    use pb::evidence_item::Item;
    match item.item {
        Some(Item::Enrolment(_)) | Some(Item::Revocation(_)) => true,
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

/// The regions whose figures a verdict is about: the claimed region, or
/// (a bundle naming none) every top with verified figures.
fn tops(r: &AuditReport) -> Vec<RegionCode> {
    match r.claim.and_then(|c| c.region) {
        Some(top) => vec![top],
        None => r.proven.keys().copied().collect(),
    }
}

/// What was proven of one top: its verified months, their sum, the months
/// missing, and whether all of it verified.
struct Proven {
    region: RegionCode,
    months: Vec<MonthRow>,
    total: Tally,
    missing: Vec<String>,
    verified: bool,
}

fn proven(r: &AuditReport, top: RegionCode) -> Proven {
    let months: Vec<MonthRow> = r
        .proven
        .get(&top)
        .into_iter()
        .flatten()
        .map(|(m, f)| MonthRow {
            period: m.to_string(),
            total: f.total,
            revision: f.revision,
            digest: f.digest.to_hex(),
            verified: r.month_verified(*m),
        })
        .collect();
    let total = months
        .iter()
        .try_fold(Tally::default(), |sum, m| sum.checked_add(&m.total))
        .unwrap_or_default();
    let missing: Vec<String> = r
        .months_missing(top)
        .iter()
        .map(|m| m.to_string())
        .collect();
    let verified = missing.is_empty() && months.iter().all(|m| m.verified);
    Proven {
        region: top,
        months,
        total,
        missing,
        verified,
    }
}

fn claimed_period(r: &AuditReport) -> String {
    r.claim
        .map(|c| c.period.to_string())
        .unwrap_or_else(|| "(no period)".into())
}

/// Every region's figures over the period, top-down, for `--all`.
fn region_rows(r: &AuditReport) -> Vec<RegionRow> {
    let top_level = r
        .regions
        .keys()
        .map(|c| c.level() as u32)
        .min()
        .unwrap_or(0);
    r.regions
        .iter()
        .map(|(code, v)| RegionRow {
            name: r.name(*code),
            code: code.to_string(),
            depth: code.level() as u32 - top_level,
            total: v.total,
            children_reported: v.reported,
            children_expected: v.expected,
            verified: v.problems.is_empty(),
        })
        .collect()
}

fn print_table(title: &str, table: &Table) {
    println!("{title}");
    println!("{}", table.render());
}

fn print_report(r: &AuditReport, all: bool) {
    if let Some(h) = &r.header {
        let region = if h.region.is_empty() {
            "(none: the anchors' regions)"
        } else {
            &h.region
        };
        println!(
            "the header claims region {region}, period {}, exported by {} (unsigned; checked against the signed summaries)",
            h.period, h.exported_by
        );
    }
    println!(
        "{} summaries, {} enrolments, {} receipts",
        r.summaries, r.enrolments, r.receipts
    );
    for p in &r.general {
        println!("✗ {p}");
    }
    for (code, v) in r.regions.iter().filter(|(_, v)| !v.problems.is_empty()) {
        println!(
            "✗ {} ({code}) · {} summaries · children {}/{}",
            r.path(*code),
            v.summaries,
            v.reported,
            v.expected
        );
        for p in &v.problems {
            println!("    {p}");
        }
    }
    println!();
    let period = claimed_period(r);
    for top in tops(r) {
        let p = proven(r, top);
        let what = if p.verified {
            "verified figures"
        } else {
            "signed figures, NOT verified"
        };
        let mut title = format!(
            "{what}: {} ({top}, {}) · {period}",
            r.name(top),
            top.level().label()
        );
        if !p.missing.is_empty() {
            title.push_str(&format!(
                " · no verified summary for {}",
                p.missing.join(", ")
            ));
        }
        print_table(&title, &months_table(&p.months, &p.total));
    }
    if all {
        print_table(
            &format!("every region · {period} (上报/应报 summed over the months)"),
            &regions_table(&region_rows(r)),
        );
    }
    if r.verified() {
        let names: Vec<String> = tops(r)
            .into_iter()
            .map(|t| format!("{} ({t})", r.name(t)))
            .collect();
        println!(
            "VERIFIED: {} {period}: every signature, enrolment chain, total, completeness count and receipt checks out",
            names.join(", ")
        );
    } else {
        let n = r.problem_count();
        println!(
            "NOT VERIFIED: {n} {}",
            if n == 1 { "problem" } else { "problems" }
        );
    }
}

fn report_json(r: &AuditReport, all: bool) -> Value {
    let period = claimed_period(r);
    let proven: Vec<Value> = tops(r)
        .into_iter()
        .map(|top| {
            let p = proven(r, top);
            let months: Vec<Value> = p
                .months
                .iter()
                .map(|m| {
                    json!({
                        "period": m.period,
                        "revision": m.revision,
                        "digest": m.digest,
                        "verified": m.verified,
                        "total": tally_json(&m.total),
                    })
                })
                .collect();
            json!({
                "region": p.region.to_string(),
                "name": r.name(p.region),
                "level": p.region.level().as_str(),
                "period": period,
                "verified": p.verified,
                "months": months,
                "months_missing": p.missing,
                "total": tally_json(&p.total),
            })
        })
        .collect();
    let regions: Vec<_> = r
        .regions
        .iter()
        .filter(|(_, v)| all || !v.problems.is_empty())
        .map(|(code, v)| {
            let mut region = json!({
                "region": code.to_string(),
                "name": r.name(*code),
                "path": r.path(*code),
                "summaries": v.summaries,
                "children_reported": v.reported,
                "children_expected": v.expected,
                "verified": v.problems.is_empty(),
                "problems": v.problems,
            });
            if all {
                region["total"] = tally_json(&v.total);
            }
            region
        })
        .collect();
    json!({
        "verified": r.verified(),
        "header": r.header.as_ref().map(|h| json!({"region": h.region, "period": h.period, "exported_by": h.exported_by, "signed": false})),
        "claim": r.claim.map(|c| json!({"region": c.region.map(|r| r.to_string()), "period": c.period.to_string()})),
        "proven": proven,
        "summaries": r.summaries,
        "enrolments": r.enrolments,
        "receipts": r.receipts,
        "problems": r.problem_count(),
        "general": r.general,
        "regions": regions,
    })
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
    match verify_proof(items, &anchors) {
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

/// The proven unit and its chain, from the signed summaries only.
fn print_proof(p: &ProofReport) {
    let unit = &p.unit;
    let chain: Vec<String> = p
        .chain
        .iter()
        .map(|v| format!("{} r{}", v.name, v.revision))
        .collect();
    println!(
        "VERIFIED: {} ({}) {} revision {}: counted, by digest, in: {}",
        unit.name,
        unit.region,
        unit.period,
        unit.revision,
        chain.join(" › ")
    );
    let top_level = p.chain.last().unwrap_or(unit).region.level() as u32;
    let rows: Vec<RegionRow> = p
        .chain
        .iter()
        .rev()
        .chain(std::iter::once(unit))
        .map(|v| RegionRow {
            name: v.name.clone(),
            code: v.region.to_string(),
            depth: v.region.level() as u32 - top_level,
            total: v.total,
            children_reported: v.children.len() as u32,
            children_expected: v.children_expected,
            verified: true,
        })
        .collect();
    print_table(
        &format!("signed figures on the path · {}", unit.period),
        &regions_table(&rows),
    );
}
