//! `tallytree import cases|tasks FILE.csv`: bulk import over the streaming
//! Intake.Import call, all or nothing unless `--skip-invalid`.
//!
//! The file is read twice: a quick first pass finds rows the CLI itself must
//! refuse (unknown category or state words); the second streams the rest to
//! the node, which checks everything else. If the first pass refused rows and
//! bad rows are not to be skipped, the node checks the rest as a dry run, so
//! every problem is reported at once and nothing is stored.

use std::{fs::File, io::BufReader, path::Path, process::ExitCode};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use tallytree_proto::pb::{self, intake_client::IntakeClient};
use tokio_stream::wrappers::ReceiverStream;

use tallytree_node::sheet::{Kind, Refused, Row, Sheet};

use crate::{
    conn::{Conn, refusal},
    table::count,
};

/// Rows per streamed chunk.
const CHUNK_ROWS: usize = 2000;

/// Options of one import.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// Cases or tasks.
    pub kind: Kind,
    /// Store the valid rows even if some are refused.
    pub skip_invalid: bool,
    /// Check only.
    pub dry_run: bool,
}

fn open(path: &Path, kind: Kind) -> Result<Sheet<BufReader<File>>> {
    let file = File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    Sheet::new(BufReader::with_capacity(1 << 20, file), kind)
        .with_context(|| format!("{}", path.display()))
}

/// First pass: the rows the CLI refuses, and how many rows there are.
fn precheck(path: &Path, kind: Kind) -> Result<(Vec<Refused>, u64)> {
    let mut sheet = open(path, kind)?;
    let mut refused = Vec::new();
    let mut rows = 0;
    while let Some(row) = sheet.next_row() {
        rows += 1;
        if let Err(r) = row.with_context(|| path.display().to_string())? {
            refused.push(r);
        }
    }
    Ok((refused, rows))
}

/// Refused rows the report lists, as many as the node lists; beyond them it
/// counts (a file of the wrong kind refuses every row).
const LISTED_REFUSALS: usize = 1_000;

/// Runs an import and prints its report.
pub async fn run(conn: &Conn, path: &Path, opts: ImportOptions) -> Result<ExitCode> {
    let (pre_refused, rows) = {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || precheck(&path, opts.kind)).await??
    };
    let dry_run = opts.dry_run || (!pre_refused.is_empty() && !opts.skip_invalid);
    let mut client = IntakeClient::new(conn.connect().await?)
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);

    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!("sending {}", path.display()));

    let (tx, rx) = tokio::sync::mpsc::channel::<pb::ImportChunk>(4);
    let reader = {
        let path = path.to_owned();
        let bar = bar.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let mut sheet = open(&path, opts.kind)?;
            let mut chunk = new_chunk(opts.skip_invalid, dry_run);
            let mut n = 0;
            while let Some(row) = sheet.next_row() {
                match row? {
                    Ok((line, Row::Case(case))) => chunk.cases.push(pb::ImportCase {
                        line,
                        case: Some(case),
                    }),
                    Ok((line, Row::Task(task))) => chunk.tasks.push(pb::ImportTask {
                        line,
                        task: Some(task),
                    }),
                    Err(_) => continue,
                }
                n += 1;
                if n == CHUNK_ROWS {
                    bar.set_position(sheet.position());
                    let full = std::mem::replace(&mut chunk, new_chunk(false, false));
                    if tx.blocking_send(full).is_err() {
                        return Ok(());
                    }
                    n = 0;
                }
            }
            // Always send the last chunk: the first carries the flags.
            let _ = tx.blocking_send(chunk);
            bar.set_position(sheet.position());
            Ok(())
        })
    };
    let response = client.import(ReceiverStream::new(rx)).await;
    reader.await??;
    bar.finish_and_clear();
    let report = response.map_err(refusal)?.into_inner();
    Ok(print_report(path, rows, pre_refused, report, opts, dry_run))
}

fn new_chunk(skip_invalid: bool, dry_run: bool) -> pb::ImportChunk {
    pb::ImportChunk {
        skip_invalid,
        dry_run,
        cases: Vec::new(),
        tasks: Vec::new(),
    }
}

fn print_report(
    path: &Path,
    rows: u64,
    pre_refused: Vec<Refused>,
    report: pb::RecordResponse,
    opts: ImportOptions,
    dry_run: bool,
) -> ExitCode {
    // The node lists its first refusals and counts them all (an older node
    // only lists them).
    let node_refused = report.refused_count.max(report.refused.len() as u64);
    let refused_count = pre_refused.len() as u64 + node_refused;
    let mut refused: Vec<Refused> = pre_refused;
    refused.extend(report.refused.into_iter().map(|r| Refused {
        line: r.line,
        id: r.id,
        reason: r.reason,
    }));
    refused.sort_by_key(|r| r.line);
    let what = match opts.kind {
        Kind::Cases => "cases",
        Kind::Tasks => "tasks",
    };
    let stored = !dry_run && (refused.is_empty() || opts.skip_invalid);
    if stored {
        println!(
            "{}: {} {what} accepted, {} refused{}",
            path.display(),
            count(report.accepted),
            count(refused_count),
            if refused.is_empty() { "" } else { " (skipped)" }
        );
    } else if opts.dry_run && refused.is_empty() {
        println!(
            "{}: all {} rows pass every check (dry run, nothing stored)",
            path.display(),
            count(rows)
        );
    } else {
        println!(
            "{}: {} of {} rows refused; nothing stored{}",
            path.display(),
            count(refused_count),
            count(rows),
            if opts.dry_run {
                " (dry run)"
            } else {
                " (fix them, or pass --skip-invalid to store the rest)"
            }
        );
    }
    for r in refused.iter().take(LISTED_REFUSALS) {
        if r.id.is_empty() {
            println!("  line {}: {}", r.line, r.reason);
        } else {
            println!("  line {} (id {}): {}", r.line, r.id, r.reason);
        }
    }
    let listed = refused.len().min(LISTED_REFUSALS) as u64;
    if refused_count > listed {
        println!(
            "  and {} more rows refused, not listed",
            count(refused_count - listed)
        );
    }
    if stored && !report.months_changed.is_empty() {
        println!(
            "months changed: {} (new signed revisions follow shortly)",
            report.months_changed.join(", ")
        );
    }
    if refused.is_empty() || stored {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
