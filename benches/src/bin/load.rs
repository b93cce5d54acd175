//! The load harness: end-to-end figures of a real node.
//!
//! - `load import`: starts a node in this process (RocksDB in a temporary
//!   directory, a fresh key), streams cases over the `Intake.Import` RPC in
//!   chunks and reports cases per second. The node answers only after the
//!   whole import is synced to its write-ahead log, so the figure includes
//!   durability. It also measures raw ring verify in the same run and
//!   reports the import rate as a ratio to it.
//! - `load bulk`: starts the release binary `tallytree-node`, streams one
//!   large import (default 2,000,000 cases) into it and reports cases per
//!   second and the node's peak resident memory (`VmHWM`, and `VmRSS`
//!   sampled during the import): an import is staged chunk by chunk, so
//!   memory should not grow with its length.
//! - `load idle-rss`: starts the release binary `tallytree-node` with a
//!   fresh configuration, waits until it serves, lets it idle and reads its
//!   resident memory from `/proc/PID/status`; then stops it with SIGTERM.
//!
//! Every node is made as an operator makes one, by `tallytree init` (its
//! keys, its CA, its operator credential), serves TLS by its unit's CA, and
//! is called over TLS with the operator's token, as any client calls it.
//! Everything listens on 127.0.0.1 only, every wait is bounded, and both
//! commands stop the node they started. See docs/BENCHMARKS.md.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use clap::{Parser, Subcommand};
use prost::Message;
use tallytree_benches::{
    Window, case_records, case_to_pb,
    client::{self, Authed},
    street_summary,
};
use tallytree_cli::init::{InitArgs, init};
use tallytree_node::{
    Node,
    clock::Clock,
    config::{AddressFile, Config},
};
use tallytree_proto::{
    SigningKey,
    envelope::pae,
    pb::{self, intake_client::IntakeClient, query_client::QueryClient},
    statement::Statement,
};
use tokio::net::TcpListener;
use tonic::{Request, transport::Endpoint};

/// The log filter of the node binaries the harness starts.
const NODE_LOG: &str = "warn";

/// Months the generated cases are spread over (the ones before the current).
const MONTHS: u32 = 10;

/// Longest wait for one import call.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(300);

/// Longest wait for a node to serve, sign, or stop.
const NODE_TIMEOUT: Duration = Duration::from_secs(30);

/// End-to-end load figures of a tallytree node.
#[derive(Parser, Debug)]
#[command(name = "load", about)]
struct Args {
    /// What to measure.
    #[command(subcommand)]
    command: Cmd,
}

/// The measurements.
#[derive(Subcommand, Debug)]
enum Cmd {
    /// Bulk import over the streaming RPC into an in-process node, with the
    /// raw ring verify rate of the same run for reference.
    Import {
        /// Cases per import.
        #[arg(long, default_value_t = 100_000)]
        cases: usize,
        /// Cases per streamed chunk.
        #[arg(long, default_value_t = 2_000)]
        chunk: usize,
        /// Imports, each of new cases, into the same node.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Seconds spent measuring raw ring verify.
        #[arg(long, default_value_t = 3)]
        verify_secs: u64,
    },
    /// One large import over the streaming RPC into the release node
    /// binary: cases per second and the node's peak resident memory.
    Bulk {
        /// Cases in the import.
        #[arg(long, default_value_t = 2_000_000)]
        cases: usize,
        /// Cases per streamed chunk.
        #[arg(long, default_value_t = 2_000)]
        chunk: usize,
        /// The node binary; default: tallytree-node next to this executable
        /// (target/release), or $TALLYTREE_NODE_BIN.
        #[arg(long, env = "TALLYTREE_NODE_BIN")]
        node_bin: Option<PathBuf>,
    },
    /// Resident memory of the release node binary when idle.
    IdleRss {
        /// The node binary; default: tallytree-node next to this executable
        /// (target/release), or $TALLYTREE_NODE_BIN.
        #[arg(long, env = "TALLYTREE_NODE_BIN")]
        node_bin: Option<PathBuf>,
        /// Seconds to let the node idle once it serves.
        #[arg(long, default_value_t = 5)]
        wait_secs: u64,
        /// Import this many cases before idling (0: a fresh, empty node).
        #[arg(long, default_value_t = 0)]
        import: usize,
        /// After the import, stop the node and start it again on the same
        /// data before idling (the state of a node restarted overnight).
        #[arg(long)]
        restart: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match args.command {
        Cmd::Import {
            cases,
            chunk,
            rounds,
            verify_secs,
        } => runtime.block_on(import(cases, chunk, rounds, verify_secs)),
        Cmd::Bulk {
            cases,
            chunk,
            node_bin,
        } => runtime.block_on(bulk(cases, chunk, node_bin)),
        Cmd::IdleRss {
            node_bin,
            wait_secs,
            import,
            restart,
        } => runtime.block_on(idle_rss(node_bin, wait_secs, import, restart)),
    }
}

/// Where temporary node directories go: `$TALLYTREE_BENCH_DIR` or the
/// system temp dir. Put it on the disk a node would use: syncs are measured.
fn bench_dir() -> PathBuf {
    std::env::var_os("TALLYTREE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

/// A node made by `tallytree init` in `dir`, listening on a port of
/// 127.0.0.1 it binds itself: its config as the node reads it, the config
/// file, the unit's CA certificate (what clients verify the node by) and
/// the operator's token.
struct NodeFiles {
    config: Config,
    config_path: PathBuf,
    ca_pem: String,
    token: String,
}

fn node_files(dir: &Path) -> anyhow::Result<NodeFiles> {
    let example = Config::example();
    let made = init(&InitArgs {
        code: example.region,
        name: example.name,
        dir: dir.to_owned(),
        listen: "127.0.0.1:0".parse()?,
        operator_name: "load harness".into(),
        parent: None,
        server_names: Vec::new(),
        plaintext: false,
        console: None,
    })?;
    let config = Config::load(&made.config)?;
    let ca_pem = std::fs::read_to_string(&config.tls.ca_file)
        .with_context(|| format!("reading {}", config.tls.ca_file.display()))?;
    Ok(NodeFiles {
        config,
        config_path: made.config,
        ca_pem,
        token: made.operator_token,
    })
}

/// The chunks of one import: `cases` new cases with ids from `first_id`,
/// registered over the `MONTHS` months before the node's current month.
fn chunks(
    config: &Config,
    cases: usize,
    chunk: usize,
    first_id: usize,
    seed: u64,
) -> anyhow::Result<Vec<pb::ImportChunk>> {
    let current = Clock::new(config.utc_offset_hours).month();
    let window = Window::before(current, MONTHS).context("a window of past months")?;
    let records = case_records(cases, &window, seed);
    let chunk = chunk.max(1);
    Ok(records
        .chunks(chunk)
        .enumerate()
        .map(|(c, records)| pb::ImportChunk {
            cases: records
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let i = c * chunk + i;
                    pb::ImportCase {
                        line: i as u64 + 2,
                        case: Some(case_to_pb(format!("L{:08}", first_id + i), r)),
                    }
                })
                .collect(),
            ..Default::default()
        })
        .collect())
}

/// Streams `chunks` as one import and returns the node's answer.
async fn send_import(
    client: &mut IntakeClient<Authed>,
    chunks: Vec<pb::ImportChunk>,
) -> anyhow::Result<pb::RecordResponse> {
    let request = Request::new(tokio_stream::iter(chunks));
    let response = tokio::time::timeout(IMPORT_TIMEOUT, client.import(request))
        .await
        .context("import: no answer within the time limit")?
        .context("import refused")?;
    Ok(response.into_inner())
}

/// Checks that every row was accepted.
fn check_accepted(out: &pb::RecordResponse, expected: usize) -> anyhow::Result<()> {
    if let Some(first) = out.refused.first() {
        bail!(
            "{} rows refused, first on line {} ({}): {}",
            out.refused.len(),
            first.line,
            first.id,
            first.reason
        );
    }
    ensure!(
        out.accepted == expected as u64,
        "accepted {} of {expected} rows",
        out.accepted
    );
    Ok(())
}

/// The gRPC endpoint of a node on `addr`, over TLS verified by `ca_pem`.
fn endpoint(addr: std::net::SocketAddr, ca_pem: &str) -> anyhow::Result<Endpoint> {
    client::endpoint(addr, ca_pem, IMPORT_TIMEOUT)
}

/// Connects to a node on `addr`, retrying while it starts; every call
/// carries `token`.
async fn channel(addr: std::net::SocketAddr, ca_pem: &str, token: &str) -> anyhow::Result<Authed> {
    let endpoint = endpoint(addr, ca_pem)?;
    let deadline = Instant::now() + NODE_TIMEOUT;
    loop {
        match endpoint.connect().await {
            Ok(channel) => return client::authed(channel, token),
            Err(e) if Instant::now() >= deadline => {
                return Err(e).with_context(|| format!("node on {addr} does not answer"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Cases registered and pending flag of the node's own row over the
/// generated months.
async fn registered_and_pending(
    query: &mut QueryClient<Authed>,
    period: &str,
) -> anyhow::Result<(u64, bool)> {
    let response = query
        .tally(pb::TallyRequest {
            region: String::new(),
            period: period.to_owned(),
            depth: 0,
        })
        .await
        .context("query tally")?
        .into_inner();
    let row = response.rows.first().context("query: no row")?;
    let registered = row
        .total
        .as_ref()
        .map_or(0, |t| t.cases.iter().map(|c| c.registered).sum());
    Ok((registered, row.pending))
}

/// Waits until the node's signed revisions count `expected` cases; returns
/// how long that took.
async fn wait_signed(
    query: &mut QueryClient<Authed>,
    period: &str,
    expected: u64,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let (registered, pending) = registered_and_pending(query, period).await?;
        if registered == expected && !pending {
            return Ok(start.elapsed());
        }
        ensure!(
            start.elapsed() < NODE_TIMEOUT,
            "signed revisions count {registered} of {expected} cases after {NODE_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The query period covering the generated months, e.g. `2026-01..2026-10`.
fn generated_period(config: &Config) -> anyhow::Result<String> {
    let current = Clock::new(config.utc_offset_hours).month();
    let window = Window::before(current, MONTHS).context("a window of past months")?;
    let month = |d: chrono::NaiveDate| d.format("%Y-%m").to_string();
    Ok(format!("{}..{}", month(window.first), month(window.last)))
}

/// Raw ring verifications per second of a summary's PAE message, measured
/// for about `secs` seconds on one thread.
fn ring_verify_rate(secs: u64) -> anyhow::Result<f64> {
    let (key, _) = SigningKey::generate().context("generating a key")?;
    let public = key.public_key();
    let message = pae(pb::Summary::PAYLOAD_TYPE, &street_summary().encode_to_vec());
    let sig = key.sign(&message);
    let budget = Duration::from_secs(secs.max(1));
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..100 {
            ensure!(
                public.verify(std::hint::black_box(&message), &sig),
                "signature does not verify"
            );
        }
        n += 100;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

async fn import(cases: usize, chunk: usize, rounds: usize, verify_secs: u64) -> anyhow::Result<()> {
    ensure!(
        cases > 0 && rounds > 0,
        "--cases and --rounds must be at least 1"
    );
    let dir = tempfile::tempdir_in(bench_dir()).context("temporary directory")?;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("bind 127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let NodeFiles {
        config,
        ca_pem,
        token,
        ..
    } = node_files(dir.path())?;
    let period = generated_period(&config)?;

    println!(
        "import: {cases} cases x {rounds} rounds, chunks of {chunk}, months {period}, data in {}",
        dir.path().display()
    );
    // Rows are generated before the clock starts; encoding them is timed.
    let batches = (0..rounds)
        .map(|r| chunks(&config, cases, chunk, r * cases, r as u64 + 1))
        .collect::<anyhow::Result<Vec<_>>>()?;

    println!("ring verify: measuring for {verify_secs} s on one thread ...");
    let verify_rate = tokio::task::spawn_blocking(move || ring_verify_rate(verify_secs)).await??;
    println!("ring verify: {verify_rate:.0} ops/s (reference limit)");

    let node = Node::open(config)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(node.run(listener, async {
        let _ = stopped.await;
    }));
    let channel = channel(addr, &ca_pem, &token).await?;
    let mut client = IntakeClient::new(channel.clone());
    let mut query = QueryClient::new(channel);

    let mut rates = Vec::with_capacity(rounds);
    let mut failure = None;
    for (round, chunks) in batches.into_iter().enumerate() {
        let start = Instant::now();
        let out = match send_import(&mut client, chunks).await {
            Ok(out) => out,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        let elapsed = start.elapsed();
        if let Err(e) = check_accepted(&out, cases) {
            failure = Some(e);
            break;
        }
        let rate = cases as f64 / elapsed.as_secs_f64();
        println!(
            "round {}: {cases} cases accepted and synced in {:.1} ms: {rate:.0} cases/s ({} months changed)",
            round + 1,
            elapsed.as_secs_f64() * 1e3,
            out.months_changed.len()
        );
        rates.push(rate);
    }
    if failure.is_none() {
        match wait_signed(&mut query, &period, (cases * rounds) as u64).await {
            Ok(t) => println!(
                "signed: every month's new revision visible {:.0} ms after the last import",
                t.as_secs_f64() * 1e3
            ),
            Err(e) => failure = Some(e),
        }
    }

    let _ = stop.send(());
    match tokio::time::timeout(NODE_TIMEOUT, server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("node stopped with an error: {e}"),
        Ok(Err(e)) => eprintln!("node task failed: {e}"),
        Err(_) => eprintln!("node did not stop within {NODE_TIMEOUT:?}"),
    }
    if let Some(e) = failure {
        return Err(e);
    }

    let best = rates.iter().copied().fold(0.0, f64::max);
    let mid = median(&rates);
    println!();
    println!("import, durable, end to end: median {mid:.0} cases/s, best {best:.0} cases/s");
    println!("ring verify (same run):      {verify_rate:.0} ops/s");
    println!(
        "ratio import / ring verify:  {:.2} (median), {:.2} (best)",
        mid / verify_rate,
        best / verify_rate
    );
    println!(
        "target >= 20000 cases/s:     {}",
        if mid >= 20_000.0 { "met" } else { "NOT met" }
    );
    Ok(())
}

async fn bulk(cases: usize, chunk: usize, node_bin: Option<PathBuf>) -> anyhow::Result<()> {
    ensure!(cases > 0, "--cases must be at least 1");
    let bin = node_binary(node_bin)?;
    let dir = tempfile::tempdir_in(bench_dir()).context("temporary directory")?;
    let files = node_files(dir.path())?;
    let (config, log_path) = (&files.config, dir.path().join("node.log"));
    let address_file = config.address_file();
    let period = generated_period(config)?;
    println!(
        "bulk: {cases} cases in one import, chunks of {chunk}, months {period}, {} on 127.0.0.1 (a port it binds), data in {}",
        bin.display(),
        dir.path().display()
    );
    // Rows are generated before the clock starts; encoding them is timed.
    let chunks = chunks(config, cases, chunk, 0, 1)?;

    let mut node = start_node(&bin, &files.config_path, &log_path)?;
    let channel = wait_serving(&mut node, &address_file, &files, &period, &log_path).await?;
    let pid = node.child.id();
    let (rss_idle, _) = memory_kb(pid)?;

    // VmHWM is the peak since start; the samples show the course.
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((rss, _)) = memory_kb(pid) {
                    peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        })
    };
    let cpu_before = process_cpu_seconds(pid);
    let mut client = IntakeClient::new(channel.clone()).max_encoding_message_size(usize::MAX);
    let start = Instant::now();
    let out = send_import(&mut client, chunks).await;
    let elapsed = start.elapsed();
    let cpu_import = process_cpu_seconds(pid).zip(cpu_before).map(|(a, b)| a - b);
    let (_, hwm_import) = memory_kb(pid)?;
    let out = out?;
    check_accepted(&out, cases)?;
    let mut query = QueryClient::new(channel);
    let signed_after = wait_signed(&mut query, &period, cases as u64).await?;
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak_sampled = sampler.await.unwrap_or(0);
    let (rss_end, hwm_end) = memory_kb(pid)?;
    let (stop_time, clean) = node.terminate()?;

    let rate = cases as f64 / elapsed.as_secs_f64();
    println!(
        "imported: {cases} cases accepted and synced in {:.2} s: {rate:.0} cases/s ({} months changed)",
        elapsed.as_secs_f64(),
        out.months_changed.len()
    );
    if let Some(cpu) = cpu_import {
        println!(
            "node CPU during the import: {cpu:.2} s ({:.2} cores)",
            cpu / elapsed.as_secs_f64()
        );
    }
    println!(
        "signed: every month's new revision visible {:.0} ms after the import",
        signed_after.as_secs_f64() * 1e3
    );
    println!();
    println!("node VmRSS before the import:     {}", megabytes(rss_idle));
    println!(
        "node VmRSS peak sampled (100 ms): {}",
        megabytes(peak_sampled)
    );
    println!(
        "node VmHWM at the import's end:   {}",
        megabytes(hwm_import)
    );
    println!("node VmHWM after signing:         {}", megabytes(hwm_end));
    println!("node VmRSS after signing:         {}", megabytes(rss_end));
    println!(
        "SIGTERM: stopped in {:.0} ms, {}",
        stop_time.as_secs_f64() * 1e3,
        if clean { "exit 0" } else { "non-zero exit" }
    );
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    println!(
        "target peak <= 150 MB:            {}",
        verdict(hwm_end * 1024 <= 150_000_000)
    );
    println!(
        "target >= 200000 cases/s:         {}",
        verdict(rate >= 200_000.0)
    );
    Ok(())
}

/// CPU time (user + system) a process has used, from `/proc/PID/stat`.
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(ticks / 100.0)
}

/// Stops the child with SIGTERM, then SIGKILL if it has not exited in time,
/// whatever path leaves the scope.
struct NodeProcess {
    /// The running node.
    child: Child,
}

impl NodeProcess {
    /// Sends SIGTERM and waits for the exit; returns how long it took and
    /// whether it exited cleanly.
    fn terminate(&mut self) -> anyhow::Result<(Duration, bool)> {
        let start = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("running kill -TERM")?;
        ensure!(status.success(), "kill -TERM {} failed", self.child.id());
        while start.elapsed() < NODE_TIMEOUT {
            if let Some(exit) = self.child.try_wait()? {
                return Ok((start.elapsed(), exit.success()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("node did not stop within {NODE_TIMEOUT:?} of SIGTERM")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The node binary: given, or next to this executable.
fn node_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p,
        None => std::env::current_exe()
            .context("locating this executable")?
            .with_file_name("tallytree-node"),
    };
    ensure!(
        path.is_file(),
        "{}: no node binary; build it first with `cargo build --release -p tallytree-node` \
         or pass --node-bin",
        path.display()
    );
    Ok(path)
}

/// `VmRSS` and `VmHWM` of a process, in kB.
fn memory_kb(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("/proc/{pid}/status: no {name}"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

fn megabytes(kb: u64) -> String {
    format!(
        "{:.1} MB ({:.1} MiB)",
        kb as f64 * 1024.0 / 1e6,
        kb as f64 / 1024.0
    )
}

/// Starts the node binary with `config_path`, logging to `log_path`.
fn start_node(bin: &Path, config_path: &Path, log_path: &Path) -> anyhow::Result<NodeProcess> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .context("opening node.log")?;
    let mut command = Command::new(bin);
    command
        .arg("--config")
        .arg(config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Overrides from this shell would change the node under test; the
    // log filter is the harness's own (init writes "info").
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("TALLYTREE_") {
            command.env_remove(var);
        }
    }
    command.env("TALLYTREE_LOG", NODE_LOG);
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok(NodeProcess { child })
}

/// Waits until the node has reported the address it bound in
/// `address_file` and answers a query there (over TLS verified by its CA,
/// with the operator's token); fails if it exits first.
async fn wait_serving(
    node: &mut NodeProcess,
    address_file: &AddressFile,
    files: &NodeFiles,
    period: &str,
    log_path: &Path,
) -> anyhow::Result<Authed> {
    let started = Instant::now();
    loop {
        if let Some(exit) = node.child.try_wait()? {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            bail!("node exited ({exit}) before serving:\n{log}");
        }
        let addr = address_file
            .read()
            .with_context(|| format!("reading {}", address_file.path().display()))?;
        if let Some(addr) = addr
            && let Ok(ch) = endpoint(addr, &files.ca_pem)?.connect().await
        {
            let ch = client::authed(ch, &files.token)?;
            let mut query = QueryClient::new(ch.clone());
            if registered_and_pending(&mut query, period).await.is_ok() {
                println!(
                    "pid {} serving after {:.0} ms",
                    node.child.id(),
                    started.elapsed().as_secs_f64() * 1e3
                );
                return Ok(ch);
            }
        }
        ensure!(
            started.elapsed() < NODE_TIMEOUT,
            "node not serving after {NODE_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn idle_rss(
    node_bin: Option<PathBuf>,
    wait_secs: u64,
    import: usize,
    restart: bool,
) -> anyhow::Result<()> {
    let bin = node_binary(node_bin)?;
    let dir = tempfile::tempdir_in(bench_dir()).context("temporary directory")?;
    let files = node_files(dir.path())?;
    let (config, log_path) = (&files.config, dir.path().join("node.log"));
    let address_file = config.address_file();
    let period = generated_period(config)?;
    println!(
        "idle-rss: {} on 127.0.0.1 (a port it binds), data in {}",
        bin.display(),
        dir.path().display()
    );

    let mut node = start_node(&bin, &files.config_path, &log_path)?;
    let mut channel = wait_serving(&mut node, &address_file, &files, &period, &log_path).await?;
    if import > 0 {
        let mut client = IntakeClient::new(channel.clone());
        let start = Instant::now();
        let out = send_import(&mut client, chunks(config, import, 2_000, 0, 1)?).await?;
        check_accepted(&out, import)?;
        let mut query = QueryClient::new(channel.clone());
        wait_signed(&mut query, &period, import as u64).await?;
        println!(
            "imported and signed {import} cases in {:.0} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    if restart {
        drop(channel);
        let (stop_time, _) = node.terminate()?;
        println!(
            "stopped with SIGTERM in {:.0} ms; restarting on the same data",
            stop_time.as_secs_f64() * 1e3
        );
        node = start_node(&bin, &files.config_path, &log_path)?;
        channel = wait_serving(&mut node, &address_file, &files, &period, &log_path).await?;
    }
    drop(channel);

    let pid = node.child.id();
    println!("idling {wait_secs} s ...");
    let mut peak_sampled = 0;
    for _ in 0..wait_secs {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak_sampled = peak_sampled.max(memory_kb(pid)?.0);
    }
    let (rss, hwm) = memory_kb(pid)?;
    let (stop_time, clean) = node.terminate()?;

    println!();
    println!("idle VmRSS:               {}", megabytes(rss));
    println!("largest VmRSS while idle: {}", megabytes(peak_sampled));
    println!("VmHWM (peak since start): {}", megabytes(hwm));
    println!(
        "SIGTERM: stopped in {:.0} ms, {}",
        stop_time.as_secs_f64() * 1e3,
        if clean { "exit 0" } else { "non-zero exit" }
    );
    println!(
        "target < 40 MB idle:      {}",
        if rss * 1024 < 40_000_000 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(())
}
