//! The federation load harness.
//!
//! `federation submit`: a parent's Federation.Submit throughput — summaries
//! verified, durably stored and receipted per second over real gRPC into a
//! real RocksDB — read against the raw ring verify limit × cores measured
//! in the same run. By default the parent is the province and its children
//! are cities pushing their whole changed subtree (see [`subtree`]). The
//! parent is made by `tallytree init` and serves TLS by its CA; each child
//! is enrolled with its TLS key's certificate request and submits as a
//! real child does, over mutual TLS on a connection of its own with the
//! client certificate the parent's CA issued for the key its enrolment
//! binds (the node's own [`parent_endpoint`]).
//!
//! `federation latency`: the demo's 47-process federation on loopback; one
//! village change after another, timed until the province shows it,
//! verified and re-signed at every level (p50, p95, max).
//!
//! Both bind 127.0.0.1 only, bound their loops and stop by themselves.

mod console;
mod subtree;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail, ensure};
use clap::{Parser, Subcommand};
use tallytree_aggregator::Tally;
use tallytree_benches::client;
use tallytree_cli::init::{InitArgs, init};
use tallytree_node::{
    Node,
    config::Config,
    tls::client::{ParentTls, parent_endpoint},
};
use tallytree_proto::{
    Category, Month, PeriodRange, PublicKey, RegionCode,
    pb::{
        self, enrolments_client::EnrolmentsClient, federation_client::FederationClient,
        query_client::QueryClient,
    },
    statement,
};
use tonic::transport::Channel;

/// Load harness for the federation.
#[derive(Parser, Debug)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A parent's Submit throughput against the ring verify limit × cores.
    Submit {
        /// Children enrolled at the parent.
        #[arg(long, default_value_t = 14)]
        children: u32,
        /// Revisions each child submits (the first untimed).
        #[arg(long, default_value_t = 41)]
        revisions: u64,
        /// Submissions in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Each child's subtree, as children per unit level by level: the
        /// default is a city's (5 districts of 5 streets of 10 villages)
        /// pushing to the province, every unit changed since its last push;
        /// `15` is a street pushing its 15 villages to its district; `none`
        /// sends bare village summaries to their street.
        #[arg(long, default_value = "5,5,10", value_parser = parse_fanout)]
        fanout: Fanout,
    },
    /// The province's web console over a Liaoning-sized subtree.
    Console {
        /// Cities below the province.
        #[arg(long, default_value_t = 14)]
        cities: u32,
        /// Each city's subtree, children per unit level by level.
        #[arg(long, default_value = "7,14,12", value_parser = parse_fanout)]
        fanout: Fanout,
        /// Requests timed per page.
        #[arg(long, default_value_t = 50)]
        samples: usize,
    },
    /// Village-to-province latency in the demo federation.
    Latency {
        /// Changes to time.
        #[arg(long, default_value_t = 30)]
        samples: usize,
        /// Directory holding tallytree-node (default: beside this binary).
        #[arg(long)]
        bin_dir: Option<std::path::PathBuf>,
    },
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match args.command {
            Command::Submit {
                children,
                revisions,
                concurrency,
                fanout,
            } => submit(children, revisions, concurrency, &fanout.0).await,
            Command::Latency { samples, bin_dir } => latency(samples, bin_dir).await,
            Command::Console {
                cities,
                fanout,
                samples,
            } => console::run(cities, &fanout.0, samples).await,
        }
    })
}

/// Children per unit, level by level below the parent's children.
#[derive(Clone, Debug)]
struct Fanout(Vec<u32>);

fn parse_fanout(s: &str) -> Result<Fanout, String> {
    if s == "none" || s.is_empty() {
        return Ok(Fanout(Vec::new()));
    }
    s.split(',')
        .map(|n| match n.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{n:?}: a positive number of children per unit")),
        })
        .collect::<Result<_, _>>()
        .map(Fanout)
}

/// Rounds of a Submit run; the ring verify limit is sampled between them.
const ROUNDS: u64 = 8;

async fn submit(children: u32, revisions: u64, concurrency: usize, fanout: &[u32]) -> Result<()> {
    if revisions < 2 {
        bail!("--revisions: at least 2 (the first is an untimed warm-up)");
    }
    // The parent is as far above the villages as the children's subtrees
    // are deep: the province for cities, a district for streets, a street
    // for bare village summaries.
    let (parent_code, parent_name) = match fanout.len() {
        0 => ("210214001000", "铁西街道"),
        1 => ("210214000000", "普兰店区"),
        2 => ("210200000000", "大连市"),
        3 => ("210000000000", "辽宁省"),
        _ => bail!("--fanout: at most three levels below the children"),
    };
    let parent_code = RegionCode::parse(parent_code)?;
    let child_codes: Vec<RegionCode> = (0..children)
        .map(|i| subtree::child_code(parent_code, i))
        .collect::<Result<_>>()
        .context("--children")?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let one = tallytree_benches::ring_verify_limit(1, 20_000);
    // The limit on every core at once, sampled before, between rounds of
    // the run and after it (the host's speed drifts).
    let mut limit = tallytree_benches::LimitSamples::new(cores);
    limit.sample(20_000);
    println!(
        "ring verify: {one:.0}/s on one core, {:.0}/s on {cores} cores at once",
        limit.mean()
    );

    // The parent, in-process, RocksDB in a temporary dir: its keys, CA,
    // operator credential and config made by `tallytree init`.
    let dir = tempfile::tempdir()?;
    let made = init(&InitArgs {
        code: parent_code,
        name: parent_name.into(),
        dir: dir.path().join("parent"),
        listen: "127.0.0.1:0".parse()?,
        operator_name: "load harness".into(),
        parent: None,
        server_names: Vec::new(),
        plaintext: false,
        console: None,
    })?;
    let config = Config::load(&made.config)?;
    let ca_pem = std::fs::read_to_string(&config.tls.ca_file)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let url = format!("https://{addr}");
    let node = Node::open(config)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(node.run(listener, async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Enrol the children, as the parent's operator does: each child's
    // public key and its TLS key's certificate request. The enrolment
    // binds the TLS key; the answer carries the client certificate the
    // parent's CA issued for it and that CA's certificate.
    let operator = client::endpoint(addr, &ca_pem, Duration::from_secs(60))?
        .connect()
        .await?;
    let mut enrol = EnrolmentsClient::new(client::authed(operator.clone(), &made.operator_token)?);
    let (units, child_tls) = enrol_children(&mut enrol, parent_code, child_codes, fanout).await?;
    let descendants = units.first().map_or(0, subtree::Unit::descendants);
    tokio::time::sleep(Duration::from_millis(5)).await;

    // Every submission signed beforehand: the harness measures the parent.
    let month = Month::of(chrono::Utc::now().date_naive())
        .and_then(|m| Month::from_index(m.index() - 1))
        .context("month")?;
    let now = chrono::Utc::now().timestamp_millis();
    let mut per_child: Vec<Vec<pb::SubmitRequest>> = Vec::new();
    for unit in &units {
        let mut list = Vec::new();
        for r in 1..=revisions {
            let mut envs = Vec::with_capacity(descendants);
            let (_, _, env) = unit.seal(month, r, now, &mut envs)?;
            let mut enrolments = Vec::new();
            if r == 1 {
                unit.enrolments(now, &mut enrolments);
            }
            list.push(pb::SubmitRequest {
                summary: Some(env),
                descendants: envs,
                enrolments,
                revocations: Vec::new(),
            });
        }
        per_child.push(list);
    }
    // Each child's first revision carries the enrolments of its children,
    // forwarded once: sent before the timed rounds, as a warm-up.
    let submissions = u64::from(children) * (revisions - 1);
    let total = submissions * (1 + descendants as u64);
    println!(
        "{parent_name} {parent_code}: {submissions} submissions ({total} signed summaries: each child's with its {descendants} descendants) from {children} children, {concurrency} in flight at most, after one untimed revision each that forwards the enrolments"
    );

    // One connection per child, as each child's pusher holds one to its
    // parent: mutual TLS with the child's own certificate, the parent
    // verified by its CA under its own name.
    let mut channels: Vec<Channel> = Vec::with_capacity(child_tls.len());
    for tls in &child_tls {
        let endpoint = parent_endpoint(&url, Some(tls), Duration::from_secs(60))?;
        channels.push(endpoint.connect().await?);
    }
    // The path measured is the checked one: the parent refuses a child's
    // submission made without a client certificate, or with another
    // child's.
    if let Some(first) = per_child.first().and_then(|list| list.first()) {
        let without = FederationClient::new(operator).submit(first.clone()).await;
        ensure!(
            matches!(&without, Err(s) if s.code() == tonic::Code::Unauthenticated),
            "a submission without a client certificate was not refused: {without:?}"
        );
        if let Some(other) = channels.get(1) {
            let wrong = FederationClient::new(other.clone())
                .submit(first.clone())
                .await;
            ensure!(
                matches!(&wrong, Err(s) if s.code() == tonic::Code::PermissionDenied),
                "a submission with another child's certificate was not refused: {wrong:?}"
            );
        }
        println!(
            "mutual TLS: each child on a connection of its own with its enrolled certificate; without one a submission is refused (unauthenticated), with another child's too (permission denied)"
        );
    }
    let receipts = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let per_submission = (1 + descendants) as f64;
    // In rounds of revisions, the limit sampled between them: each round is
    // read against the mean of the samples just before and after it.
    let per_round = (revisions - 1).div_ceil(ROUNDS).max(1) as usize;
    let mut elapsed = 0.0;
    let mut expected = 0.0;
    let mut round_ratios = Vec::new();
    let mut cpu = Some(0.0);
    let mut per_child: Vec<std::vec::IntoIter<pb::SubmitRequest>> =
        per_child.into_iter().map(Vec::into_iter).collect();
    let warm_up = per_child
        .iter_mut()
        .map(|list| list.take(1).collect())
        .collect();
    run_round(warm_up, concurrency, &channels, &receipts).await?;
    receipts.store(0, std::sync::atomic::Ordering::Relaxed);
    loop {
        let round: Vec<Vec<pb::SubmitRequest>> = per_child
            .iter_mut()
            .map(|list| list.by_ref().take(per_round).collect())
            .collect();
        if round.iter().all(Vec::is_empty) {
            break;
        }
        let receipts_before = receipts.load(std::sync::atomic::Ordering::Relaxed);
        let cpu_start = tallytree_benches::cpu_seconds();
        let start = Instant::now();
        run_round(round, concurrency, &channels, &receipts).await?;
        let took = start.elapsed().as_secs_f64();
        let done = receipts.load(std::sync::atomic::Ordering::Relaxed) - receipts_before;
        elapsed += took;
        cpu = cpu
            .zip(tallytree_benches::cpu_seconds().zip(cpu_start))
            .map(|(c, (b, a))| c + b - a);
        let before = *limit.samples.last().context("a sample before the round")?;
        limit.sample(6_000);
        let bracket = (before + limit.samples.last().copied().unwrap_or(before)) / 2.0;
        expected += took * bracket;
        round_ratios.push(done as f64 * per_submission / (took * bracket));
    }
    let got = receipts.load(std::sync::atomic::Ordering::Relaxed);
    if got != submissions {
        bail!("{got} receipts for {submissions} submissions");
    }
    let rate = total as f64 / elapsed;
    println!(
        "Submit: {total} summaries verified, synced and receipted in {elapsed:.2} s = {rate:.0} summaries/s ({:.0} submissions/s)",
        submissions as f64 / elapsed
    );
    let all = limit.mean();
    println!(
        "ring verify limit: {all:.0}/s on {cores} cores at once (mean of {} samples before, between rounds and after: {:.0} to {:.0})",
        limit.samples.len(),
        limit.low(),
        limit.high()
    );
    println!(
        "ratio to the ring verify limit × cores: {:.1}% (each round against the samples around it; rounds {:.1}% to {:.1}%); against the mean of all samples {:.1}%",
        100.0 * total as f64 / expected,
        100.0 * round_ratios.iter().copied().fold(f64::INFINITY, f64::min),
        100.0 * round_ratios.iter().copied().fold(0.0, f64::max),
        100.0 * rate / all
    );
    if let Some(cpu) = cpu {
        println!(
            "CPU: {cpu:.2} s of the process (parent and load generator) over {elapsed:.2} s on {cores} cores = {:.0}% busy",
            100.0 * cpu / (elapsed * cores as f64)
        );
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}

/// One round: every child's revisions in order, one at a time per child,
/// `concurrency` submissions in flight. Children wait in one queue; a
/// sender takes the next child, submits its next revision on the child's
/// own connection (`channels[i]` for child `i`) and puts the child back at
/// the end, so the load stays even to the end of the round.
/// Builds each child's subtree and enrols the child at the parent, as the
/// parent's operator does: its public key and its TLS key's certificate
/// request. The enrolment binds the TLS key; the answer carries the client
/// certificate the parent's CA issued for it and that CA's certificate.
pub(crate) async fn enrol_children(
    enrol: &mut EnrolmentsClient<client::Authed>,
    parent_code: RegionCode,
    child_codes: Vec<RegionCode>,
    fanout: &[u32],
) -> Result<(Vec<subtree::Unit>, Vec<ParentTls>)> {
    let mut units = Vec::new();
    let mut child_tls = Vec::new();
    for code in child_codes {
        let unit = subtree::Unit::build(code, fanout)?;
        let name = format!("单位{code}");
        let enrolled = enrol
            .enrol(pb::EnrolRequest {
                region: code.to_string(),
                name: name.clone(),
                public_key: unit.key.public_key().0.to_vec(),
                tls_csr: unit.tls.csr_pem(code, &name)?,
            })
            .await?
            .into_inner();
        let parent_key = PublicKey::from_slice(&enrolled.parent_public_key)?;
        let enrolment: pb::Enrolment = statement::open(
            enrolled.enrolment.as_ref().context("an enrolment")?,
            &parent_key,
        )?;
        ensure!(
            enrolment.tls_spki_sha256 == unit.tls.spki_digest().0,
            "the enrolment of {code} binds another TLS key"
        );
        child_tls.push(ParentTls {
            parent: parent_code,
            ca_pem: enrolled.parent_ca_certificate,
            cert_pem: enrolled.client_certificate,
            key_pem: unit.tls.private_pem(),
        });
        units.push(unit);
    }
    Ok((units, child_tls))
}

pub(crate) async fn run_round(
    per_child: Vec<Vec<pb::SubmitRequest>>,
    concurrency: usize,
    channels: &[Channel],
    receipts: &Arc<std::sync::atomic::AtomicU64>,
) -> Result<()> {
    type Lists = std::collections::VecDeque<(usize, std::vec::IntoIter<pb::SubmitRequest>)>;
    let queue: Lists = per_child
        .into_iter()
        .enumerate()
        .filter(|(_, list)| !list.is_empty())
        .map(|(i, list)| (i, list.into_iter()))
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(queue));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let channels = channels.to_vec();
        let receipts = receipts.clone();
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().expect("queue").pop_front();
                let Some((child, mut list)) = next else {
                    return Ok::<(), tonic::Status>(());
                };
                let req = list.next().expect("lists in the queue are not empty");
                let mut client = FederationClient::new(channels[child].clone());
                let r = client.submit(req).await?;
                if r.into_inner().receipt.is_some() {
                    receipts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                if list.len() > 0 {
                    queue.lock().expect("queue").push_back((child, list));
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

async fn latency(samples: usize, bin_dir: Option<std::path::PathBuf>) -> Result<()> {
    use tallytree_cli::demo::{data, nodes::Federation, tree};
    let bin_dir = match bin_dir {
        Some(d) => d,
        None => std::env::current_exe()?
            .parent()
            .context("exe dir")?
            .to_owned(),
    };
    let dir = tempfile::tempdir()?;
    let units = tree::units();
    let mut fed = Federation::new(&bin_dir, dir.path())?;
    let result = async {
        fed.start(&units).await?;
        fed.enrol_all().await?;
        let today = chrono::Utc::now().date_naive();
        let mut loads = Vec::new();
        for node in &fed.nodes {
            let d = data::generate(node.unit.code, today, 2026, false);
            loads.push(node.record(d.cases, d.tasks));
        }
        futures_join(loads).await?;
        let months = data::months(today);
        let month = *months.last().context("months")?;
        // The province's operator, over TLS verified by its CA.
        let mut client = QueryClient::new(fed.conn(0).connect().await?);
        let province_total = |rows: &pb::TallyResponse| {
            rows.rows
                .first()
                .and_then(|r| r.months.iter().find(|m| m.period == month.to_string()))
                .and_then(|m| m.total.as_ref())
                .and_then(|t| Tally::from_pb(t, "total").ok())
                .map(|t| t.case_totals().registered)
        };
        // Let the initial load settle.
        let mut last = None;
        for _ in 0..200 {
            let rows = client
                .tally(pb::TallyRequest { region: String::new(), period: PeriodRange::month(month).to_string(), depth: 0 })
                .await?
                .into_inner();
            let now = province_total(&rows);
            if now.is_some() && now == last {
                break;
            }
            last = now;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let villages: Vec<usize> = fed
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.unit.code.level() == tallytree_proto::Level::Village)
            .map(|(i, _)| i)
            .collect();
        let mut times = Vec::new();
        for s in 0..samples {
            let v = &fed.nodes[villages[(s * 7) % villages.len()]];
            let before = province_total(
                &client
                    .tally(pb::TallyRequest { region: String::new(), period: month.to_string(), depth: 0 })
                    .await?
                    .into_inner(),
            )
            .unwrap_or(0);
            let case = pb::Case {
                id: format!("LATENCY-{s}"),
                category: Category::Neighbour.to_pb() as i32,
                registered_on: (month.first_day() + chrono::Days::new(3)).to_string(),
                state: pb::CaseState::InProgress as i32,
                closed_on: String::new(),
                deadline: String::new(),
            };
            let t0 = Instant::now();
            v.record(vec![case], Vec::new()).await?;
            loop {
                let rows = client
                    .tally(pb::TallyRequest { region: String::new(), period: month.to_string(), depth: 0 })
                    .await?
                    .into_inner();
                if province_total(&rows).unwrap_or(0) > before {
                    break;
                }
                if t0.elapsed() > Duration::from_secs(30) {
                    bail!("change {s} did not reach the province in 30 s");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
        println!(
            "village → province over 4 hops ({} changes): p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms (default signer debounce 50 ms per level)",
            times.len(),
            pct(0.50),
            pct(0.95),
            times[times.len() - 1]
        );
        Ok::<(), anyhow::Error>(())
    }
    .await;
    fed.stop().await;
    result
}

async fn futures_join(loads: Vec<impl std::future::Future<Output = Result<()>>>) -> Result<()> {
    for l in loads {
        l.await?;
    }
    Ok(())
}
