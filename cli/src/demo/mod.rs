//! `tallytree demo`: a whole five-level federation on loopback, as separate
//! `tallytree-node` processes with temporary data directories. It enrols
//! every unit with its parent, loads realistic cases and tasks, waits until
//! the province holds everything and its totals equal exactly what the units
//! recorded, prints the province's drill-down, changes one village's cases,
//! times the change arriving at the province, and shuts every node down:
//! after the walk-through, on a failure, or on SIGINT, SIGTERM or SIGHUP
//! (see [`nodes`] for how each node picks its port and how none outlives
//! the demo).

pub mod data;
pub mod nodes;
pub mod tree;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use tallytree_aggregator::Tally;
use tallytree_node::{
    access::{Credentials, Role},
    records::{self, Rules},
};
use tallytree_proto::{
    Month, PeriodRange, RegionCode,
    pb::{self, query_client::QueryClient},
};

use self::nodes::Federation;
use crate::{
    conn::Conn,
    query::{Format, QueryArgs},
};

/// Demo options.
#[derive(Debug, Clone)]
pub struct DemoArgs {
    /// Where the tallytree-node binary is.
    pub bin_dir: Option<PathBuf>,
    /// Keep the nodes running until Ctrl-C, SIGTERM or SIGHUP.
    pub keep_running: bool,
    /// Data directory (default: a temporary one, removed at the end).
    pub dir: Option<PathBuf>,
    /// Seed of the generated figures.
    pub seed: u64,
    /// Five units, one per level, instead of the whole tree (for tests).
    pub small: bool,
}

/// Runs the demo. Whatever ends it (the walk-through done, a failure, a
/// stop signal) it stops every node it started before it returns.
pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    // Before any node starts, so that a signal never finds a node the demo
    // would not stop.
    let mut stop = StopSignals::install()?;
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("cannot locate the tallytree binary's directory")?
            .to_owned(),
    };
    // The temporary directory lives (and is removed) with `_temp`, after
    // the nodes have stopped.
    let (dir, _temp) = match &args.dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("tallytree-demo-")
                .tempdir()?;
            (t.path().to_owned(), Some(t))
        }
    };
    let units = if args.small {
        tree::one_per_level()
    } else {
        tree::units()
    };
    println!(
        "tallytree demo: {} units, five levels, one tallytree-node process each",
        units.len()
    );
    println!("data and logs in {}", dir.display());

    let mut fed = Federation::new(&bin_dir, &dir)?;
    let outcome = tokio::select! {
        done = walk_through(&mut fed, &units, &args) => done,
        signal = stop.recv() => Err(anyhow::anyhow!("stopped by {signal}")),
    };
    if let Err(e) = &outcome {
        eprintln!("demo failed: {e:#}");
    }
    let outcome = match outcome {
        Ok(()) => print_console(&fed, &dir, args.keep_running),
        e => e,
    };
    if args.keep_running && outcome.is_ok() {
        let top = &fed.nodes[0];
        println!();
        println!("the federation keeps running; press Ctrl-C (or send SIGTERM) to stop it. Try:");
        let config = dir.join(top.unit.code.to_string()).join("node.toml");
        println!(
            "  tallytree --config {} query --period {} --depth 2",
            config.display(),
            fed.year_range()
        );
        println!(
            "  tallytree --config {} query --region 210214000000 --period {} --by-month",
            config.display(),
            fed.year_range()
        );
        println!("every node's address is in {}", fed.node_list().display());
        let signal = stop.recv().await;
        println!();
        println!("{signal} received");
    }
    println!();
    println!("stopping {} nodes...", fed.started());
    let clean = fed.stop().await;
    if !clean {
        eprintln!(
            "some nodes did not stop cleanly; see the logs in {}",
            dir.display()
        );
    }
    match (outcome, clean) {
        (Ok(()), true) => {
            println!("all nodes stopped cleanly. demo complete.");
            Ok(ExitCode::SUCCESS)
        }
        _ => Ok(ExitCode::from(1)),
    }
}

/// The signals that stop the demo as Ctrl-C does: SIGINT, SIGTERM (a
/// supervisor, `timeout`, `kill`) and SIGHUP (the terminal closed).
struct StopSignals {
    #[cfg(unix)]
    /// SIGINT, SIGTERM and SIGHUP, with their names.
    signals: Vec<(tokio::signal::unix::Signal, &'static str)>,
}

impl StopSignals {
    /// Catches the signals from now on.
    fn install() -> Result<StopSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut signals = Vec::new();
            for (kind, name) in [
                (SignalKind::interrupt(), "SIGINT"),
                (SignalKind::terminate(), "SIGTERM"),
                (SignalKind::hangup(), "SIGHUP"),
            ] {
                let s = signal(kind).with_context(|| format!("cannot catch {name}"))?;
                signals.push((s, name));
            }
            Ok(StopSignals { signals })
        }
        #[cfg(not(unix))]
        Ok(StopSignals {})
    }

    /// Resolves with the name of the next signal caught.
    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            let waits = self.signals.iter_mut().map(|(s, name)| {
                Box::pin(async move {
                    s.recv().await;
                    *name
                })
            });
            futures::future::select_all(waits).await.0
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

/// Starts the nodes, then runs the scenario.
async fn walk_through(fed: &mut Federation, units: &[tree::Unit], args: &DemoArgs) -> Result<()> {
    fed.start(units).await?;
    scenario(fed, args).await
}

async fn scenario(fed: &Federation, args: &DemoArgs) -> Result<()> {
    fed.enrol_all().await?;
    println!(
        "enrolled {} units with their parents (signed enrolments, province key = trust anchor)",
        fed.nodes.len() - 1
    );
    let street = fed
        .nodes
        .iter()
        .position(|n| n.unit.name == "铁西街道")
        .context("demo street missing")?;
    let street_code = fed.nodes[street].unit.code;
    let silent = RegionCode::from_u64(street_code.as_u64() + SILENT_VILLAGE_SEGMENT)?;
    fed.enrol_silent(street, silent, SILENT_VILLAGE).await?;
    println!(
        "enrolled {SILENT_VILLAGE} ({silent}) at 铁西街道 but started no node for it: it never reports, and the console's 报送情况 (completeness) view lists it as missing"
    );

    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset"))
        .date_naive();
    let rules = Rules {
        today,
        default_deadline_days: 30,
    };
    // Load every unit's records and compute what the province must show.
    let mut expected: BTreeMap<Month, Tally> = BTreeMap::new();
    let mut cases = 0;
    let mut tasks = 0;
    let mut loads = Vec::new();
    for node in &fed.nodes {
        let flat = node.unit.name == data::FLAT_LINE_VILLAGE;
        let d = data::generate(node.unit.code, today, args.seed, flat);
        for c in &d.cases {
            let (_, r) = records::parse_case(c, &rules)
                .map_err(|e| anyhow::anyhow!("generated case: {e}"))?;
            expected.entry(r.month()).or_default().count_case(&r);
        }
        for t in &d.tasks {
            let (_, _, r) =
                records::parse_task(t).map_err(|e| anyhow::anyhow!("generated task: {e}"))?;
            expected.entry(r.month()).or_default().count_task(&r, today);
        }
        cases += d.cases.len();
        tasks += d.tasks.len();
        loads.push(node.record(d.cases, d.tasks));
    }
    let started = Instant::now();
    futures::future::try_join_all(loads).await?;
    println!("recorded {cases} cases at villages and streets and {tasks} tasks at districts");

    let months: Vec<Month> = data::months(today);
    let range = PeriodRange {
        from: months[0],
        to: months[months.len() - 1],
    };
    let top = fed.conn(0);
    wait_until(&top, range, Duration::from_secs(120), |rows| {
        months
            .iter()
            .all(|m| month_total(rows, *m) == expected.get(m).copied())
    })
    .await
    .context("the province did not converge to the villages' figures")?;
    println!(
        "the province holds every summary of its subtree, verified, and its totals equal exactly the sum of what the units recorded ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    println!();
    crate::query::run(
        &fed.conn(0),
        QueryArgs {
            region: None,
            period: range.to_string(),
            depth: 3,
            by_month: false,
            format: Format::Table,
        },
    )
    .await?;

    // A change at one village travels up four levels.
    let village = fed
        .nodes
        .iter()
        .find(|n| n.unit.name == "玉皇庙社区")
        .context("demo village missing")?;
    let month = months[months.len() - 1];
    let before = month_total_of(&top, month).await?;
    let change: Vec<pb::Case> = (1..=3)
        .map(|i| pb::Case {
            id: format!("{}-CHANGE-{i}", village.unit.code),
            category: tallytree_proto::Category::Neighbour.to_pb() as i32,
            registered_on: (month.first_day() + chrono::Days::new(20)).to_string(),
            state: pb::CaseState::Resolved as i32,
            closed_on: (month.first_day() + chrono::Days::new(22)).to_string(),
            deadline: (month.first_day() + chrono::Days::new(27)).to_string(),
        })
        .collect();
    println!(
        "{} ({}) records 3 more resolved neighbour disputes for {month}...",
        village.unit.name, village.unit.code
    );
    let t0 = Instant::now();
    village.record(change, Vec::new()).await?;
    let mut want = before;
    let n = want.category_mut(tallytree_proto::Category::Neighbour);
    n.registered += 3;
    n.resolved += 3;
    n.resolved_on_time += 3;
    wait_until(
        &top,
        PeriodRange::month(month),
        Duration::from_secs(30),
        |rows| month_total(rows, month) == Some(want),
    )
    .await
    .context("the change did not reach the province")?;
    println!(
        "...and 辽宁省 shows it, re-verified and re-signed at every level, {:.0} ms later",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    println!();
    crate::query::run(
        &fed.conn(0),
        QueryArgs {
            region: None,
            period: month.to_string(),
            depth: 1,
            by_month: false,
            format: Format::Table,
        },
    )
    .await?;
    Ok(())
}

/// The village enrolled that never reports.
pub const SILENT_VILLAGE: &str = "后石村";
/// Its village segment below 铁西街道.
const SILENT_VILLAGE_SEGMENT: u64 = 298;

/// Prints the province's web console and a reader's and an auditor's
/// login (new credentials at the province), and the demo village's
/// console for entry.
fn print_console(fed: &Federation, dir: &std::path::Path, keep_running: bool) -> Result<()> {
    let top = &fed.nodes[0];
    let file = &top.config.access.credentials_file;
    let mut creds = Credentials::load(file)?;
    let now = crate::init::now_rfc3339();
    let reader = creds.add("演示读者 (demo reader)", Role::Reader, &now)?;
    let auditor = creds.add("演示审计员 (demo auditor)", Role::Auditor, &now)?;
    creds.save(file)?;
    let village = fed
        .nodes
        .iter()
        .position(|n| n.unit.name == "玉皇庙社区")
        .context("demo village missing")?;
    let v = &fed.nodes[village];
    println!();
    println!("web console of {}: {}", top.unit.name, fed.console_url(0)?);
    println!("  log in as a reader:   {reader}");
    println!("  or as an auditor:     {auditor}");
    println!(
        "  the certificate is issued by the province's own CA: the browser warns unless {} is imported",
        dir.join(top.unit.code.to_string()).join("ca.pem").display()
    );
    println!(
        "web console of {} (entry): {}  operator token in {}",
        v.unit.name,
        fed.console_url(village)?,
        dir.join(v.unit.code.to_string())
            .join(crate::init::OPERATOR_TOKEN_FILE)
            .display()
    );
    if !keep_running {
        println!(
            "  (the consoles stop with the demo: run `tallytree demo --keep-running` to use them)"
        );
    }
    Ok(())
}

fn month_total(rows: &pb::TallyResponse, m: Month) -> Option<Tally> {
    let row = rows.rows.first()?;
    let fig = row.months.iter().find(|f| f.period == m.to_string())?;
    Tally::from_pb(fig.total.as_ref()?, "total").ok()
}

async fn month_total_of(conn: &Conn, m: Month) -> Result<Tally> {
    let mut client = QueryClient::new(conn.connect().await?);
    let rows = client
        .tally(pb::TallyRequest {
            region: String::new(),
            period: m.to_string(),
            depth: 0,
        })
        .await?
        .into_inner();
    month_total(&rows, m).context("the province has no figures for the month")
}

/// Polls the province until `done` holds or `limit` passes.
async fn wait_until(
    conn: &Conn,
    range: PeriodRange,
    limit: Duration,
    done: impl Fn(&pb::TallyResponse) -> bool,
) -> Result<()> {
    let mut client = QueryClient::new(conn.connect().await?);
    let start = Instant::now();
    loop {
        let rows = client
            .tally(pb::TallyRequest {
                region: String::new(),
                period: range.to_string(),
                depth: 0,
            })
            .await?
            .into_inner();
        if done(&rows) {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("gave up after {} s", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
