//! What the federation tests share: units (signing key, TLS key and CA,
//! credentials, config and data directory in a temporary directory), nodes
//! served in-process over TLS on loopback listeners bound before their
//! children start (so a child's config can name its parent's port),
//! top-down enrolment through the Enrolments service (the child's
//! certificate request in, its client certificate and the parent's CA
//! installed at the child, which then pushes over mutual TLS), the tallies
//! the recorded cases must add up to, and bounded polling.

// Each test file uses a different part of this module.
#![allow(dead_code)]

#[path = "../serving/mod.rs"]
mod serving;

pub(crate) use serving::{AUDITOR_TOKEN, OPERATOR_TOKEN, READER_TOKEN, Remote, Running};

use std::{collections::BTreeMap, future::Future, net::SocketAddr, path::Path, time::Duration};

use chrono::{Days, NaiveDate, Utc};
use tallytree_aggregator::{SummaryView, Tally};
use tallytree_node::{
    Node,
    config::{Config, ParentConfig, SignerConfig},
    records::{Rules, parse_case},
    store::RocksStore,
};
use tallytree_proto::{
    Month, PublicKey, RegionCode, SigningKey,
    pb::{
        self, audit_client::AuditClient, enrolments_client::EnrolmentsClient,
        intake_client::IntakeClient, query_client::QueryClient,
    },
    statement,
};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tonic::Request;

/// Longest any test waits for something to happen.
pub(crate) const WAIT: Duration = Duration::from_secs(30);
/// Pause between two looks while polling.
const POLL: Duration = Duration::from_millis(20);
/// The handling period intake gives a case recorded without a deadline
/// (the config default), needed to know which cases count as on time.
pub(crate) const DEADLINE_DAYS: u32 = 30;

/// The five levels of the tests' federation, parents first: code and name.
pub(crate) const PROVINCE: (&str, &str) = ("210000000000", "辽宁省");
/// 大连市.
pub(crate) const CITY: (&str, &str) = ("210200000000", "大连市");
/// 普兰店区.
pub(crate) const DISTRICT: (&str, &str) = ("210214000000", "普兰店区");
/// 铁西街道.
pub(crate) const STREET: (&str, &str) = ("210214001000", "铁西街道");
/// 玉皇庙社区, under 铁西街道.
pub(crate) const VILLAGE_1: (&str, &str) = ("210214001001", "玉皇庙社区");
/// 双山社区, under 铁西街道.
pub(crate) const VILLAGE_2: (&str, &str) = ("210214001002", "双山社区");
/// 大谭街道, a second street.
pub(crate) const STREET_2: (&str, &str) = ("210214002000", "大谭街道");
/// 赵家村, under 大谭街道.
pub(crate) const VILLAGE_3: (&str, &str) = ("210214002001", "赵家村");

/// One administrative unit: its signing key, TLS key and CA, credentials
/// (operator, reader and auditor, with the fixed test tokens), config and
/// data, in a temporary directory that lives as long as the unit (so a node
/// can be stopped and opened again on the same data).
pub(crate) struct Unit {
    /// Holds keys, CA, credentials, config file, data and logs; removed on
    /// drop.
    pub(crate) dir: TempDir,
    /// The configuration its node runs with.
    pub(crate) config: Config,
    /// Its public key, as its parent enrols it.
    pub(crate) public_key: PublicKey,
    /// The certificate request of its TLS key, as its parent enrols it.
    pub(crate) tls_csr: String,
}

impl Unit {
    /// A unit with fast test settings: signer debounce 10 ms (at most
    /// 100 ms), parent backoff 20-200 ms, 2 s per submission; no parent yet.
    pub(crate) fn new((code, name): (&str, &str)) -> Unit {
        let dir = tempfile::tempdir().expect("tempdir");
        let key_file = dir.path().join("node.key");
        let public_key = SigningKey::generate_to_file(&key_file)
            .expect("key written")
            .public_key();
        let mut config = Config {
            region: RegionCode::parse(code).expect("test code"),
            name: name.into(),
            data_dir: dir.path().join("data"),
            key_file,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            log: "info".into(),
            signer: SignerConfig {
                debounce_ms: 10,
                max_delay_ms: 100,
            },
            parent: ParentConfig {
                address: None,
                timeout_ms: 2_000,
                backoff_min_ms: 20,
                backoff_max_ms: 200,
            },
            ..Config::example()
        };
        serving::place_in(&mut config, dir.path());
        let tls_csr = serving::provision(&config);
        Unit {
            dir,
            config,
            public_key,
            tls_csr,
        }
    }

    /// Its region code.
    pub(crate) fn region(&self) -> RegionCode {
        self.config.region
    }

    /// Points the unit's pusher at a parent listening on `addr`, over TLS.
    pub(crate) fn push_to(&mut self, addr: SocketAddr) {
        self.config.parent.address = Some(format!("https://{addr}"));
    }

    /// How a client reaches this unit's node listening on `addr`.
    pub(crate) fn remote(&self, addr: SocketAddr) -> Remote {
        Remote::new(addr, &ca_pem(&self.config))
    }
}

/// The CA certificate (PEM) of the unit of `config`.
pub(crate) fn ca_pem(config: &Config) -> String {
    std::fs::read_to_string(&config.tls.ca_file).expect("CA certificate readable")
}

/// Opens the node of `config` (off the async threads: RocksDB's open
/// blocks) and serves it over TLS on `listener` in a task.
pub(crate) async fn serve(config: &Config, listener: TcpListener) -> Running {
    let addr = listener.local_addr().expect("local addr");
    let opening = config.clone();
    let node = tokio::task::spawn_blocking(move || Node::open(opening))
        .await
        .expect("open task")
        .unwrap_or_else(|e| panic!("node {addr} opens: {e}"));
    Running::spawn(node, listener, &ca_pem(config))
}

/// A fresh loopback listener.
pub(crate) async fn bind_any() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0")
}

/// A listener on `addr` again (a restarted node keeps its port); retried
/// briefly in case the old socket is still being torn down.
pub(crate) async fn bind_again(addr: SocketAddr) -> TcpListener {
    wait_until(&format!("binding {addr} again"), || async move {
        TcpListener::bind(addr).await.map_err(|e| e.to_string())
    })
    .await
}

/// `msg` with the operator token attached.
pub(crate) fn authed<T>(msg: T) -> Request<T> {
    let mut request = Request::new(msg);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {OPERATOR_TOKEN}").parse().expect("ascii"),
    );
    request
}

/// Enrols `key` and the TLS key of `tls_csr` for `region` at the node
/// `parent`, as its operator.
pub(crate) async fn enrol(
    parent: &Remote,
    region: RegionCode,
    name: &str,
    key: PublicKey,
    tls_csr: &str,
) -> pb::EnrolResponse {
    EnrolmentsClient::new(parent.channel())
        .enrol(authed(pb::EnrolRequest {
            region: region.to_string(),
            name: name.into(),
            public_key: key.0.to_vec(),
            tls_csr: tls_csr.into(),
        }))
        .await
        .unwrap_or_else(|s| panic!("enrolling {region} at {}: {s:?}", parent.addr))
        .into_inner()
}

/// Installs at the node `child`, as its operator, the enrolment its parent
/// signed, with the client certificate and the parent's CA that came with
/// it.
pub(crate) async fn install(child: &Remote, enrolled: pb::EnrolResponse) {
    EnrolmentsClient::new(child.channel())
        .install(authed(pb::InstallRequest {
            enrolment: enrolled.enrolment,
            parent_public_key: enrolled.parent_public_key,
            client_certificate: enrolled.client_certificate,
            parent_ca_certificate: enrolled.parent_ca_certificate,
        }))
        .await
        .unwrap_or_else(|s| panic!("installing the enrolment at {}: {s:?}", child.addr));
}

/// A federation of in-process nodes on loopback ports.
pub(crate) struct Federation {
    /// The units, parents before children.
    pub(crate) units: Vec<Unit>,
    /// Where each unit listens (kept across restarts), and its CA.
    remotes: Vec<Remote>,
    /// The running nodes; `None` while a unit is stopped.
    nodes: Vec<Option<Running>>,
}

impl Federation {
    /// Starts a node for each unit (parents first in `units`), each child
    /// pushing to its parent when the parent is in the set, then enrols
    /// every child at its parent, top-down.
    pub(crate) async fn start(units: &[(&str, &str)]) -> Federation {
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for _ in units {
            let listener = bind_any().await;
            addrs.push(listener.local_addr().expect("local addr"));
            listeners.push(listener);
        }
        let mut made: Vec<Unit> = units.iter().map(|u| Unit::new(*u)).collect();
        let codes: Vec<RegionCode> = made.iter().map(Unit::region).collect();
        for u in &mut made {
            let parent = u
                .region()
                .parent()
                .and_then(|p| codes.iter().position(|c| *c == p));
            if let Some(p) = parent {
                u.push_to(addrs[p]);
            }
        }
        // Opened all at once: each RocksDB open takes a while.
        let nodes = futures::future::join_all(
            made.iter()
                .zip(listeners)
                .map(|(u, l)| async move { Some(serve(&u.config, l).await) }),
        )
        .await;
        let remotes = made.iter().zip(&addrs).map(|(u, a)| u.remote(*a)).collect();
        let fed = Federation {
            units: made,
            remotes,
            nodes,
        };
        for (i, u) in fed.units.iter().enumerate() {
            let Some(parent) = u.region().parent() else {
                continue;
            };
            let Some(p) = codes.iter().position(|c| *c == parent) else {
                continue;
            };
            let enrolled = enrol(
                &fed.remotes[p],
                u.region(),
                &u.config.name,
                u.public_key,
                &u.tls_csr,
            )
            .await;
            install(&fed.remotes[i], enrolled).await;
        }
        fed
    }

    fn index(&self, code: &str) -> usize {
        self.units
            .iter()
            .position(|u| u.region().to_string() == code)
            .unwrap_or_else(|| panic!("{code} is not in this federation"))
    }

    /// The unit `code`.
    pub(crate) fn unit(&self, code: &str) -> &Unit {
        &self.units[self.index(code)]
    }

    /// How clients reach `code`'s node.
    pub(crate) fn at(&self, code: &str) -> &Remote {
        &self.remotes[self.index(code)]
    }

    /// Stops `code`'s node gracefully; its data stays.
    pub(crate) async fn stop(&mut self, code: &str) {
        let i = self.index(code);
        let node = self.nodes[i].take().expect("node running");
        node.stop().await;
    }

    /// Opens `code`'s node again on the same data, config and port.
    pub(crate) async fn restart(&mut self, code: &str) {
        let i = self.index(code);
        assert!(self.nodes[i].is_none(), "{code} is still running");
        let listener = bind_again(self.remotes[i].addr).await;
        self.nodes[i] = Some(serve(&self.units[i].config, listener).await);
    }

    /// Stops every node, children first.
    pub(crate) async fn shutdown(mut self) {
        for node in self.nodes.iter_mut().rev() {
            if let Some(n) = node.take() {
                n.stop().await;
            }
        }
    }
}

/// The cases one unit recorded, as its office last sent each of them (a
/// case sent again under the same id replaces the earlier one).
#[derive(Default, Clone)]
pub(crate) struct Casebook {
    /// By case id.
    cases: BTreeMap<String, pb::Case>,
}

impl Casebook {
    /// Records `cases` at the node `at`, as its operator; panics unless
    /// every one is accepted.
    pub(crate) async fn record(&mut self, at: &Remote, cases: Vec<pb::Case>) {
        let n = cases.len() as u64;
        let out = IntakeClient::new(at.with_token(OPERATOR_TOKEN))
            .record_cases(pb::RecordCasesRequest {
                cases: cases.clone(),
            })
            .await
            .unwrap_or_else(|s| panic!("recording at {}: {s:?}", at.addr))
            .into_inner();
        assert_eq!(out.accepted, n, "{out:?}");
        assert!(out.refused.is_empty(), "{out:?}");
        for c in cases {
            self.cases.insert(c.id.clone(), c);
        }
    }

    /// The tally the recorded cases of `month` must add up to, derived by
    /// the aggregator's own counting from intake's own parsing.
    pub(crate) fn tally(&self, month: Month) -> Tally {
        let rules = Rules {
            today: today(),
            default_deadline_days: DEADLINE_DAYS,
        };
        let mut tally = Tally::default();
        for c in self.cases.values() {
            let (_, record) = parse_case(c, &rules).expect("a valid case");
            if record.month() == month {
                tally.count_case(&record);
            }
        }
        tally
    }

    /// The case recorded under `id`.
    pub(crate) fn get(&self, id: &str) -> &pb::Case {
        &self.cases[id]
    }
}

/// Sums tallies.
pub(crate) fn sum<'a>(tallies: impl IntoIterator<Item = &'a Tally>) -> Tally {
    tallies.into_iter().fold(Tally::default(), |acc, t| {
        acc.checked_add(t).expect("no overflow")
    })
}

/// A case of `category` registered on `registered`, in progress.
pub(crate) fn open_case(id: &str, category: pb::Category, registered: &str) -> pb::Case {
    pb::Case {
        id: id.into(),
        category: category as i32,
        registered_on: registered.into(),
        state: pb::CaseState::InProgress as i32,
        closed_on: String::new(),
        deadline: String::new(),
    }
}

/// `case` closed in `state` on `closed`.
pub(crate) fn closed(case: &pb::Case, state: pb::CaseState, closed: &str) -> pb::Case {
    pb::Case {
        state: state as i32,
        closed_on: closed.into(),
        ..case.clone()
    }
}

/// Today at the unit (UTC+8, the nodes' default offset).
pub(crate) fn today() -> NaiveDate {
    (Utc::now() + chrono::Duration::hours(8)).date_naive()
}

/// The unit's current month.
pub(crate) fn this_month() -> Month {
    Month::of(today()).expect("current month")
}

/// The month before `m`.
pub(crate) fn month_before(m: Month) -> Month {
    let day = m.first_day().pred_opt().expect("date in range");
    Month::of(day).expect("month in range")
}

/// Two months before the current one: complete, so every day of it may be
/// used for registration and closing dates.
pub(crate) fn past_month() -> Month {
    month_before(month_before(this_month()))
}

/// Day `d` of `month`, as `YYYY-MM-DD`.
pub(crate) fn day(month: Month, d: u64) -> String {
    month
        .first_day()
        .checked_add_days(Days::new(d - 1))
        .expect("date in range")
        .to_string()
}

/// Rows of `region` (empty: the node's own) and its descendants to `depth`
/// at the node `at`, as a reader.
pub(crate) async fn rows(
    at: &Remote,
    region: &str,
    period: &str,
    depth: u32,
) -> Result<Vec<pb::RegionRow>, tonic::Status> {
    QueryClient::new(at.with_token(READER_TOKEN))
        .tally(pb::TallyRequest {
            region: region.into(),
            period: period.into(),
            depth,
        })
        .await
        .map(|r| r.into_inner().rows)
}

/// The total of a row, decoded.
pub(crate) fn total(row: &pb::RegionRow) -> Tally {
    Tally::from_pb(&row.total.clone().unwrap_or_default(), "total").expect("a valid tally")
}

/// Polls the node `at` until its own row for `month` is settled (not
/// pending, signed, verified) with exactly `want` as its total; returns it.
pub(crate) async fn wait_total(at: &Remote, month: Month, want: Tally) -> pb::RegionRow {
    let period = month.to_string();
    wait_until(&format!("the total for {period} at {}", at.addr), || {
        let period = period.clone();
        async move {
            let mut rows = rows(at, "", &period, 0)
                .await
                .map_err(|s| format!("query failed: {s:?}"))?;
            let row = rows.pop().ok_or("no row")?;
            let settled = !row.pending && row.verified && row.months.len() == 1;
            if settled && total(&row) == want {
                Ok(row)
            } else {
                Err(format!("want {want:?}, last row {row:?}"))
            }
        }
    })
    .await
}

/// Every stored revision of `region`'s summary for `month` held by the
/// node `at`, oldest first, decoded (not verified), as its auditor.
pub(crate) async fn revisions(
    at: &Remote,
    region: RegionCode,
    month: Month,
) -> Vec<(pb::Envelope, SummaryView)> {
    AuditClient::new(at.with_token(AUDITOR_TOKEN))
        .revisions(pb::RevisionsRequest {
            region: region.to_string(),
            period: month.to_string(),
        })
        .await
        .unwrap_or_else(|s| panic!("revisions of {region} at {}: {s:?}", at.addr))
        .into_inner()
        .summaries
        .into_iter()
        .map(|env| {
            let s: pb::Summary = statement::peek_unverified(&env).expect("a summary");
            let view = SummaryView::from_pb(&s).expect("a valid summary");
            (env, view)
        })
        .collect()
}

/// Calls `probe` every few milliseconds until it returns `Ok`; panics with
/// its last `Err` after [`WAIT`].
pub(crate) async fn wait_until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(last) => assert!(
                tokio::time::Instant::now() < deadline,
                "waited {WAIT:?} for {what}; last: {last}"
            ),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Opens the RocksDB store of a stopped node; retried briefly while the
/// stopped node's last handles are released.
pub(crate) async fn open_store(data_dir: &Path) -> RocksStore {
    wait_until(&format!("opening {}", data_dir.display()), || async move {
        RocksStore::open(data_dir).map_err(|e| e.to_string())
    })
    .await
}

/// Logs to stderr when `TALLYTREE_TEST_LOG` is set (e.g. "info").
pub(crate) fn init_log() {
    if let Ok(filter) = std::env::var("TALLYTREE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}
