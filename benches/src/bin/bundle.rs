//! The audit scale harness.
//!
//! `bundle generate --scale national|liaoning -o FILE` writes a synthetic,
//! validly signed evidence bundle (and FILE.anchor, the trust anchors):
//! national = 31 provinces, 310 cities, 2,790 districts, 39,060 streets,
//! 585,900 villages; liaoning = 1 province, 14 cities, 98 districts, 1,568
//! streets, 15,680 villages. Keys are derived from the region codes, so the
//! same command writes the same bundle.
//!
//! `bundle verify FILE` verifies it as `tallytree audit verify` does (the
//! aggregator's streaming Auditor on every core), and prints summaries per
//! second against the raw ring verify limit × cores measured in the same
//! run, and the process's peak resident memory.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tallytree_aggregator::{
    CaseCounts, ChildEntry, SummaryView, Tally,
    audit::Auditor,
    bundle::{BundleReader, BundleWriter},
};
use tallytree_proto::{Category, Digest, Month, RegionCode, SigningKey, pb, statement};

#[derive(Parser, Debug)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Scale {
    /// 31 provinces down to 585,900 villages.
    National,
    /// One province of about 17,400 units.
    Liaoning,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a synthetic signed bundle and its anchors (FILE.anchor).
    Generate {
        #[arg(long, value_enum)]
        scale: Scale,
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Verify a bundle and report throughput and peak memory.
    Verify {
        /// The bundle (its anchors are read from FILE.anchor).
        file: PathBuf,
    },
}

fn main() -> Result<()> {
    match Args::parse().command {
        Command::Generate { scale, output } => generate(scale, &output),
        Command::Verify { file } => verify(&file),
    }
}

/// Fan-out per level: provinces, cities per province, districts per city,
/// streets per district, villages per street.
fn shape(scale: Scale) -> [u64; 5] {
    match scale {
        Scale::National => [31, 10, 9, 14, 15],
        Scale::Liaoning => [1, 14, 7, 16, 10],
    }
}

const MULT: [u64; 5] = [10_000_000_000, 100_000_000, 1_000_000, 1_000, 1];

fn key_of(code: RegionCode) -> SigningKey {
    let seed = Digest::of(format!("tallytree synthetic bundle {code}").as_bytes());
    SigningKey::from_seed_only(&seed.0).expect("32-byte seed")
}

/// What an enrolment binds of `code`'s TLS key (the SHA-256 of its
/// SubjectPublicKeyInfo), derived from the code as the signing keys are: as
/// long as a real one, so the bundle is as large as a real one; no TLS
/// connection is made with it (an auditor does not check TLS keys).
fn tls_spki_of(code: RegionCode) -> Digest {
    Digest::of(format!("tallytree synthetic TLS key {code}").as_bytes())
}

fn children_of(code: RegionCode, shape: &[u64; 5]) -> Vec<RegionCode> {
    let level = code.level() as usize;
    if level >= 4 {
        return Vec::new();
    }
    (1..=shape[level + 1])
        .map(|i| {
            RegionCode::from_u64(code.as_u64() + i * MULT[level + 1]).expect("valid child code")
        })
        .collect()
}

fn provinces(shape: &[u64; 5]) -> Vec<RegionCode> {
    (0..shape[0])
        .map(|i| RegionCode::from_u64((11 + i) * MULT[0]).expect("valid province code"))
        .collect()
}

/// Enrolments parents first (depth-first), so one streamed batch never
/// waits for a later one.
fn write_enrolments(
    w: &mut BundleWriter<BufWriter<File>>,
    parent: RegionCode,
    shape: &[u64; 5],
    now: i64,
) -> Result<()> {
    let key = key_of(parent);
    for child in children_of(parent, shape) {
        let e = pb::Enrolment {
            parent: parent.to_string(),
            region: child.to_string(),
            name: format!("单位{}", child.as_u64() % 100_000),
            public_key: key_of(child).public_key().0.to_vec(),
            serial: 1,
            valid_from_ms: now - 1000,
            issued_at_ms: now - 1000,
            tls_spki_sha256: tls_spki_of(child).0.to_vec(),
        };
        let env = statement::seal(&key, &e).envelope;
        w.write(&pb::EvidenceItem {
            item: Some(pb::evidence_item::Item::Enrolment(env)),
        })?;
        write_enrolments(w, child, shape, now)?;
    }
    Ok(())
}

/// Summaries children first; returns this unit's digest and total.
fn write_summaries(
    w: &mut BundleWriter<BufWriter<File>>,
    code: RegionCode,
    shape: &[u64; 5],
    month: Month,
    now: i64,
    rng: &mut StdRng,
) -> Result<(Digest, Tally)> {
    let mut refs = Vec::new();
    let mut total = Tally::default();
    let kids = children_of(code, shape);
    for child in &kids {
        let (digest, t) = write_summaries(w, *child, shape, month, now, rng)?;
        total = total.checked_add(&t).context("overflow")?;
        refs.push(ChildEntry {
            region: *child,
            revision: 1,
            digest,
        });
    }
    let mut local = Tally::default();
    if kids.is_empty() {
        let registered = rng.random_range(5..40);
        let resolved = rng.random_range(0..=registered);
        *local.category_mut(Category::ALL[rng.random_range(0..Category::COUNT)]) = CaseCounts {
            registered,
            resolved,
            escalated: 0,
            in_progress: registered - resolved,
            resolved_on_time: resolved / 2,
        };
    }
    total = total.checked_add(&local).context("overflow")?;
    let view = SummaryView {
        region: code,
        name: format!("单位{}", code.as_u64() % 100_000),
        parent: code.parent(),
        period: month,
        revision: 1,
        issued_at_ms: now,
        local,
        total,
        children: refs,
        children_expected: kids.len() as u32,
    };
    let sealed = statement::seal(&key_of(code), &view.to_pb());
    w.write(&pb::EvidenceItem {
        item: Some(pb::evidence_item::Item::Summary(sealed.envelope)),
    })?;
    Ok((sealed.digest, total))
}

fn generate(scale: Scale, output: &Path) -> Result<()> {
    let shape = shape(scale);
    let now = chrono::Utc::now().timestamp_millis();
    let month = Month::new(2026, 9).context("month")?;
    let start = Instant::now();
    let mut w = BundleWriter::new(BufWriter::with_capacity(1 << 20, File::create(output)?));
    w.write(&pb::EvidenceItem {
        item: Some(pb::evidence_item::Item::Header(pb::EvidenceHeader {
            format: "tallytree-evidence-v1".into(),
            region: match scale {
                Scale::National => String::new(),
                Scale::Liaoning => provinces(&shape)[0].to_string(),
            },
            period: month.to_string(),
            exported_by: "synthetic".into(),
            exported_at_ms: now,
            exported_by_key: Vec::new(),
        })),
    })?;
    for p in provinces(&shape) {
        write_enrolments(&mut w, p, &shape, now)?;
    }
    let mut rng = StdRng::seed_from_u64(2026);
    for p in provinces(&shape) {
        write_summaries(&mut w, p, &shape, month, now, &mut rng)?;
    }
    w.finish()?;
    let mut anchors = String::new();
    for p in provinces(&shape) {
        anchors.push_str(&format!(
            "# tallytree trust anchor: {p} 省{}\n{}",
            p.as_u64() / MULT[0],
            key_of(p).public_key().to_pem()
        ));
    }
    std::fs::write(anchor_path(output), anchors)?;
    let units: u64 = (0..5).map(|l| shape[..=l].iter().product::<u64>()).sum();
    println!(
        "wrote {} ({} units, {} MB) and its anchors in {:.1} s",
        output.display(),
        units,
        std::fs::metadata(output)?.len() >> 20,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn anchor_path(bundle: &Path) -> PathBuf {
    let mut s = bundle.as_os_str().to_owned();
    s.push(".anchor");
    PathBuf::from(s)
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn verify(file: &Path) -> Result<()> {
    // The anchor file `tallytree audit verify --trust` reads.
    let anchors = tallytree_cli::evidence::load_anchors(&anchor_path(file))?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // A shared host's speed drifts within a minute: the limit is sampled
    // before, every few seconds during (the auditor paused, the pause not
    // counted) and after the run, and the run is read against their mean.
    let mut limit = tallytree_benches::LimitSamples::new(cores);
    limit.sample(40_000);
    let start = Instant::now();
    let cpu_start = tallytree_benches::cpu_seconds();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut auditor = Auditor::pinning(anchors, now_ms, cores).problems_only();
    let mut stretch = Instant::now();
    for item in BundleReader::new(BufReader::with_capacity(1 << 20, File::open(file)?)) {
        auditor.feed(item?);
        if stretch.elapsed() > Duration::from_secs(5) {
            auditor.pause();
            limit.sample_during(6_000);
            stretch = Instant::now();
        }
    }
    let report = auditor.finish();
    let secs = start.elapsed().as_secs_f64() - limit.paused_secs;
    let cpu = tallytree_benches::cpu_seconds()
        .zip(cpu_start)
        .map(|(b, a)| b - a - limit.paused_cpu);
    limit.sample(40_000);
    let (samples, low, high) = (limit.samples.len(), limit.low(), limit.high());
    let limit = limit.mean();
    println!(
        "ring verify limit: {limit:.0}/s on {cores} cores at once (mean of {samples} samples before, during and after the run: {low:.0} to {high:.0})"
    );
    if !report.verified() {
        bail!(
            "the bundle did not verify: {} problems, e.g. {:?}",
            report.problem_count(),
            report
                .regions
                .values()
                .flat_map(|v| v.problems.first())
                .next()
        );
    }
    let signatures = report.summaries + report.enrolments;
    println!(
        "verified {} summaries and {} enrolments in {secs:.1} s: {:.0} summaries/s, {:.0} signatures/s",
        report.summaries,
        report.enrolments,
        report.summaries as f64 / secs,
        signatures as f64 / secs
    );
    println!(
        "ratio to the ring verify limit × cores: {:.1}% (signatures verified per second / limit)",
        100.0 * signatures as f64 / secs / limit
    );
    if let Some(cpu) = cpu {
        println!(
            "CPU: {cpu:.1} s over {secs:.1} s on {cores} cores = {:.0}% busy",
            100.0 * cpu / (secs * cores as f64)
        );
    }
    if let Some(mb) = peak_rss_mb() {
        println!("peak resident memory: {mb:.0} MB");
    }
    std::io::stdout().flush()?;
    Ok(())
}
