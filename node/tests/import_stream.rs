//! The streaming Intake.Import: all or nothing by default, the valid rows
//! with `skip_invalid`, nothing at all with `dry_run`; refusals point back to
//! the caller's line numbers. Rows are staged in RocksDB while the stream
//! lasts: a stream that breaks, a refusal and a crash leave neither rows
//! nor staging behind.

mod common;

use std::{sync::Arc, time::Duration};

use common::{
    Clients, Remote, Running, Unit, authed, chunk, import_rows, open_case, open_cases, registered,
    resolved_case, task,
};
use tallytree_node::{
    Node,
    access::Access,
    store::{Cf, RocksStore, Store},
    tls::material::Authority,
};
use tallytree_proto::{SigningKey, pb};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

/// 300 rows of May 2026 on lines 2..=301 in three chunks, with two bad rows:
/// line 150 closes before it was registered, line 250 has no category.
fn rows_with_two_bad(skip_invalid: bool, dry_run: bool) -> Vec<pb::ImportChunk> {
    let mut cases = open_cases("IMP", 300, "2026-05-10");
    cases[148] = resolved_case("IMP-148", "2026-05-10", "2026-05-01");
    cases[248].category = 0;
    let mut rows = import_rows(2, cases);
    let third = rows.split_off(200);
    let second = rows.split_off(100);
    let mut chunks = vec![chunk(rows), chunk(second), chunk(third)];
    chunks[0].skip_invalid = skip_invalid;
    chunks[0].dry_run = dry_run;
    chunks
}

fn assert_two_refusals(out: &pb::RecordResponse) {
    let lines: Vec<u64> = out.refused.iter().map(|r| r.line).collect();
    assert_eq!(lines, [150, 250], "{out:?}");
    assert_eq!(out.refused[0].id, "IMP-148");
    assert_eq!(
        out.refused[0].reason,
        "closed_on (2026-05-01): before registered_on (2026-05-10)"
    );
    assert_eq!(out.refused[1].id, "IMP-248");
    assert!(
        out.refused[1]
            .reason
            .starts_with("category (0): unknown category"),
        "{out:?}"
    );
}

/// Asserts that nothing was ever stored in `month`.
async fn assert_untouched(c: &mut Clients, month: &str) {
    let row = c.row(month).await;
    assert!(!row.pending, "{month} was changed: {row:?}");
    assert_eq!(row.months_missing, [month], "{month} was signed: {row:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_row_refuses_the_whole_import() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();

    let out = c
        .import(rows_with_two_bad(false, false))
        .await
        .expect("import answers");
    assert_eq!(out.accepted, 0, "{out:?}");
    assert!(out.months_changed.is_empty(), "{out:?}");
    assert_two_refusals(&out);
    assert_untouched(&mut c, "2026-05").await;

    // The same rows without the bad ones go in whole.
    let good: Vec<pb::ImportChunk> = rows_with_two_bad(false, false)
        .into_iter()
        .map(|mut ch| {
            ch.cases.retain(|r| r.line != 150 && r.line != 250);
            ch
        })
        .collect();
    let out = c.import(good).await.expect("import answers");
    assert_eq!(out.accepted, 298, "{out:?}");
    assert!(out.refused.is_empty());
    assert_eq!(out.months_changed, ["2026-05"]);
    let row = c.wait_signed("2026-05").await;
    assert_eq!(registered(&row), 298);
    node.stop().await;
}

/// A file of the wrong kind refuses every row: the answer lists the first
/// 1,000 refusals by line and counts every one, so neither the node's memory
/// nor the answer grows with the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_refusing_every_row_lists_the_first_and_counts_all() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();
    // Registered in the future: every row breaks a rule the node checks.
    let chunks = chunks_of("FUT", 5, 1_000, "2099-01-01");
    let out = c.import(chunks).await.expect("import answers");
    assert_eq!(out.accepted, 0, "{:?}", out.months_changed);
    assert_eq!(out.refused_count, 5_000);
    assert_eq!(out.refused.len(), 1_000);
    let lines: Vec<u64> = out.refused.iter().map(|r| r.line).collect();
    assert_eq!(lines, (2..1_002).collect::<Vec<u64>>());
    assert!(
        out.refused[0].reason.contains("in the future"),
        "{:?}",
        out.refused[0]
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_invalid_stores_the_valid_rows_and_reports_the_refused_lines() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();

    let mut chunks = rows_with_two_bad(true, false);
    chunks[2].tasks = vec![
        pb::ImportTask {
            line: 400,
            task: Some(task("T-OK", "2026-05-31", pb::TaskState::Completed)),
        },
        pb::ImportTask {
            line: 401,
            task: Some(task("T-BAD", "2026-05-32", pb::TaskState::Completed)),
        },
    ];
    let out = c.import(chunks).await.expect("import answers");
    assert_eq!(out.accepted, 299, "{out:?}");
    let lines: Vec<u64> = out.refused.iter().map(|r| r.line).collect();
    assert_eq!(lines, [150, 250, 401], "{out:?}");
    assert_eq!(
        out.refused[2].reason,
        "deadline (2026-05-32): not a date (YYYY-MM-DD)"
    );
    assert_eq!(out.months_changed, ["2026-05"]);

    let row = c.wait_signed("2026-05").await;
    assert_eq!(registered(&row), 298);
    assert_eq!(
        row.total.as_ref().and_then(|t| t.tasks).map(|t| t.assigned),
        Some(1)
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_checks_every_row_and_stores_nothing() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();

    // Bad rows: reported, nothing stored.
    let out = c
        .import(rows_with_two_bad(false, true))
        .await
        .expect("import answers");
    assert_eq!(out.accepted, 0);
    assert_two_refusals(&out);

    // Bad rows with skip_invalid: still nothing stored.
    let out = c
        .import(rows_with_two_bad(true, true))
        .await
        .expect("import answers");
    assert_eq!(out.accepted, 0);
    assert_two_refusals(&out);

    // All valid: no refusals, nothing stored.
    let mut chunks = vec![chunk(import_rows(2, open_cases("DRY", 50, "2026-05-11")))];
    chunks[0].dry_run = true;
    let out = c.import(chunks).await.expect("import answers");
    assert_eq!(out.accepted, 0, "{out:?}");
    assert!(out.refused.is_empty(), "{out:?}");
    // months_changed means "will get a new signed revision": none will.
    assert!(out.months_changed.is_empty(), "{out:?}");

    assert_untouched(&mut c, "2026-05").await;

    // A dry run does not see rows of its own batch as stored either: a
    // real import of the same ids afterwards is a first import.
    let out = c
        .import(vec![chunk(import_rows(
            2,
            open_cases("DRY", 50, "2026-05-11"),
        ))])
        .await
        .expect("import answers");
    assert_eq!(out.accepted, 50);
    let row = c.wait_signed("2026-05").await;
    assert_eq!(registered(&row), 50);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flags_of_the_first_chunk_rule_the_stream() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();

    // skip_invalid on a later chunk does not turn skipping on.
    let mut chunks = rows_with_two_bad(false, false);
    chunks[1].skip_invalid = true;
    chunks[2].skip_invalid = true;
    let out = c.import(chunks).await.expect("import answers");
    assert_eq!(out.accepted, 0);
    assert_two_refusals(&out);

    // dry_run on a later chunk does not turn a real import into a dry run.
    let mut chunks = vec![
        chunk(import_rows(2, open_cases("A", 10, "2026-05-12"))),
        chunk(import_rows(12, open_cases("B", 10, "2026-05-12"))),
    ];
    chunks[1].dry_run = true;
    let out = c.import(chunks).await.expect("import answers");
    assert_eq!(out.accepted, 20);
    let row = c.wait_signed("2026-05").await;
    assert_eq!(registered(&row), 20);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_carries_cases_and_tasks_of_many_months() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();

    let mut first = chunk(import_rows(2, open_cases("JAN", 7, "2026-01-03")));
    first.tasks = vec![pb::ImportTask {
        line: 1,
        task: Some(task("T-MAR", "2026-03-15", pb::TaskState::InProgress)),
    }];
    let second = chunk(import_rows(
        20,
        vec![
            open_case("FEB-1", "2026-02-27"),
            resolved_case("FEB-2", "2026-02-28", "2026-03-01"),
        ],
    ));
    let out = c
        .import(vec![first, second, pb::ImportChunk::default()])
        .await
        .expect("import answers");
    assert_eq!(out.accepted, 10);
    assert_eq!(out.months_changed, ["2026-01", "2026-02", "2026-03"]);

    let row = c.wait_signed("2026-01..2026-03").await;
    assert_eq!(registered(&row), 9);
    let march = &row.months[2];
    let tasks = march.total.as_ref().and_then(|t| t.tasks).expect("tasks");
    // Due in March and not done: in progress and overdue by now.
    assert_eq!(
        (tasks.assigned, tasks.in_progress, tasks.overdue),
        (1, 1, 1)
    );

    // An empty stream stores nothing and says so.
    let out = c.import(Vec::new()).await.expect("empty import answers");
    assert_eq!(out, pb::RecordResponse::default());
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_over_the_row_limit_is_refused_whole() {
    let unit = Unit::with(|c| c.intake.max_import_rows = 50);
    let node = unit.start().await;
    let mut c = node.clients();

    let chunks = vec![
        chunk(import_rows(2, open_cases("LIM-A", 30, "2026-05-13"))),
        chunk(import_rows(32, open_cases("LIM-B", 30, "2026-05-13"))),
    ];
    let err = c.import(chunks).await.expect_err("over the limit");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .contains("more than 50 rows in one import (intake.max_import_rows)"),
        "{err:?}"
    );
    assert_untouched(&mut c, "2026-05").await;

    let out = c
        .import(vec![chunk(import_rows(
            2,
            open_cases("LIM-A", 50, "2026-05-13"),
        ))])
        .await
        .expect("at the limit");
    assert_eq!(out.accepted, 50);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_updates_stored_cases_and_refuses_backward_moves() {
    let unit = Unit::new();
    let node = unit.start().await;
    let mut c = node.clients();
    c.record_cases(open_cases("UPD", 3, "2026-06-01")).await;
    let signed = c.wait_signed("2026-06").await;

    // Resolving two and re-sending one unchanged: three accepted.
    let out = c
        .import(vec![chunk(import_rows(
            2,
            vec![
                resolved_case("UPD-0", "2026-06-01", "2026-06-05"),
                resolved_case("UPD-1", "2026-06-01", "2026-06-06"),
                open_case("UPD-2", "2026-06-01"),
            ],
        ))])
        .await
        .expect("import answers");
    assert_eq!(out.accepted, 3, "{out:?}");
    let row = c
        .wait_row("2026-06", |r| {
            r.months[0].revision > signed.months[0].revision
        })
        .await;
    assert_eq!(common::case_totals(row.total.as_ref()).resolved, 2);

    // Moving a resolved case back to in progress refuses the whole import.
    let out = c
        .import(vec![chunk(import_rows(
            2,
            vec![
                resolved_case("UPD-2", "2026-06-01", "2026-06-07"),
                open_case("UPD-0", "2026-06-01"),
            ],
        ))])
        .await
        .expect("import answers");
    assert_eq!(out.accepted, 0);
    assert_eq!(out.refused.len(), 1);
    assert_eq!(out.refused[0].line, 3);
    assert!(
        out.refused[0]
            .reason
            .contains("cannot go back from resolved"),
        "{out:?}"
    );
    let again = c.row("2026-06").await;
    assert!(!again.pending);
    assert_eq!(again.months, row.months);
    node.stop().await;
}

/// The node of `unit` served in-process over a RocksDB store the test holds
/// too, so that it can look into staging while the node runs.
async fn start_sharing_store(unit: &Unit) -> (Running, Arc<RocksStore>) {
    std::fs::create_dir_all(&unit.config.data_dir).expect("data dir");
    let store = Arc::new(RocksStore::open(&unit.config.data_dir).expect("store opens"));
    let config = &unit.config;
    let key = SigningKey::load(&config.key_file).expect("key");
    let ca = Authority::load(&config.tls.ca_key_file, &config.tls.ca_file).expect("CA loads");
    let access = Access::open(&config.access).expect("credentials read");
    let node = Node::with_store(
        config.clone(),
        key,
        None,
        store.clone(),
        Arc::new(ca),
        Arc::new(access),
    )
    .expect("node");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    (Running::spawn(node, listener, &unit.ca_pem()), store)
}

/// Entries in `cf` whose key starts with `prefix`.
fn entries(store: &dyn Store, cf: Cf, prefix: &[u8]) -> usize {
    let mut n = 0;
    store
        .scan(cf, prefix, &mut |_, _| {
            n += 1;
            true
        })
        .expect("scan");
    n
}

/// Rows staged by imports in progress (or left behind).
fn staged(store: &dyn Store) -> usize {
    entries(store, Cf::Staging, b"")
}

/// Polls `done` until it holds; panics after [`common::WAIT`].
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {:?} for {what}",
            common::WAIT
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `n` chunks of `per_chunk` in-progress cases `{prefix}-{i}` registered on
/// `day`, on lines from 2.
fn chunks_of(prefix: &str, n: usize, per_chunk: usize, day: &str) -> Vec<pb::ImportChunk> {
    let mut rows = import_rows(2, open_cases(prefix, n * per_chunk, day));
    let mut chunks = Vec::with_capacity(n);
    while !rows.is_empty() {
        let rest = rows.split_off(per_chunk.min(rows.len()));
        chunks.push(chunk(std::mem::replace(&mut rows, rest)));
    }
    chunks
}

/// A TCP relay to `target` that the test can cut, as a client's network or
/// process going away does: both connections close under the stream.
/// (Dropping a tonic call does not do it: the request body keeps being
/// sent by a task of its own, and would end the stream properly.)
struct Relay {
    /// Where clients connect.
    addr: std::net::SocketAddr,
    /// Accepts and relays; aborting it closes every relayed connection.
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn to(target: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let mut relays = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let mut server = tokio::net::TcpStream::connect(target)
                    .await
                    .expect("node accepts");
                relays.spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Relay { addr, task }
    }

    /// Closes every connection through the relay.
    async fn cut(self) {
        // The JoinSet of relayed connections is dropped with the task,
        // which aborts them and drops their sockets.
        self.task.abort();
        let _ = self.task.await;
    }
}

/// An import whose chunks the test sends one by one, through `relay`.
struct OpenImport {
    /// Where the chunks go.
    tx: mpsc::Sender<pb::ImportChunk>,
    /// The call.
    call: tokio::task::JoinHandle<Result<pb::RecordResponse, tonic::Status>>,
}

impl OpenImport {
    fn start(remote: &Remote) -> OpenImport {
        let (tx, rx) = mpsc::channel(1);
        let mut intake = Clients::new(remote).intake;
        let call = tokio::spawn(async move {
            intake
                .import(authed(ReceiverStream::new(rx)))
                .await
                .map(tonic::Response::into_inner)
        });
        OpenImport { tx, call }
    }

    async fn send(&self, chunk: pb::ImportChunk) {
        self.tx.send(chunk).await.expect("the call takes chunks");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_midway_leaves_neither_rows_nor_staging() {
    let unit = Unit::new();
    let (node, store) = start_sharing_store(&unit).await;
    let mut c = node.clients();

    let relay = Relay::to(node.addr).await;
    // TLS end to end through the relay: the node's certificate names
    // 127.0.0.1 whatever the port.
    let import = OpenImport::start(&node.remote().via(relay.addr));
    let chunks = chunks_of("GONE", 10, 500, "2026-05-14");
    for ch in chunks.iter().take(6).cloned() {
        import.send(ch).await;
    }
    wait_until("the node to stage rows", || staged(store.as_ref()) >= 1_000).await;
    relay.cut().await;
    // The client learns that its import failed (tonic: "transport error").
    import.call.await.expect("call task").expect_err("cut off");
    drop(import.tx);

    wait_until("the staged rows to go", || staged(store.as_ref()) == 0).await;
    assert_eq!(entries(store.as_ref(), Cf::CaseIds, b"GONE"), 0);
    assert_eq!(entries(store.as_ref(), Cf::Dirty, b""), 0);
    assert_untouched(&mut c, "2026-05").await;

    // The same ids, sent whole, go in whole.
    let out = c.import(chunks).await.expect("import answers");
    assert_eq!(out.accepted, 5_000, "{out:?}");
    let row = c.wait_signed("2026-05").await;
    assert_eq!(registered(&row), 5_000);
    assert_eq!(staged(store.as_ref()), 0);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_over_the_limit_and_dry_run_imports_leave_no_staging() {
    let unit = Unit::with(|c| c.intake.max_import_rows = 1_000);
    let (node, store) = start_sharing_store(&unit).await;
    let mut c = node.clients();

    let out = c
        .import(rows_with_two_bad(false, false))
        .await
        .expect("import answers");
    assert_two_refusals(&out);
    assert_eq!(staged(store.as_ref()), 0, "refused: staging removed");

    let out = c
        .import(rows_with_two_bad(true, true))
        .await
        .expect("import answers");
    assert_two_refusals(&out);
    assert_eq!(staged(store.as_ref()), 0, "dry run: staging removed");

    let err = c
        .import(chunks_of("LIM", 3, 400, "2026-05-15"))
        .await
        .expect_err("over the limit");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(staged(store.as_ref()), 0, "over the limit: staging removed");

    assert_eq!(entries(store.as_ref(), Cf::CaseIds, b""), 0);
    assert_untouched(&mut c, "2026-05").await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_repeated_in_a_later_chunk_refuses_the_import() {
    let unit = Unit::new();
    let (node, store) = start_sharing_store(&unit).await;
    let mut c = node.clients();

    let mut chunks = chunks_of("REP", 3, 100, "2026-05-16");
    // Line 352 repeats REP-50, which the first chunk carried on line 52.
    chunks[2].cases.push(pb::ImportCase {
        line: 352,
        case: Some(open_case("REP-50", "2026-05-16")),
    });
    let out = c.import(chunks.clone()).await.expect("import answers");
    assert_eq!(out.accepted, 0, "{out:?}");
    assert_eq!(out.refused.len(), 1, "{out:?}");
    assert_eq!(out.refused[0].line, 352);
    assert_eq!(out.refused[0].id, "REP-50");
    assert_eq!(
        out.refused[0].reason,
        "id (REP-50): duplicate in this batch (first on line 52)"
    );
    assert_eq!(staged(store.as_ref()), 0);
    assert_untouched(&mut c, "2026-05").await;

    // With skip_invalid the first one counts and the repeat is reported.
    chunks[0].skip_invalid = true;
    let out = c.import(chunks).await.expect("import answers");
    assert_eq!(out.accepted, 300, "{out:?}");
    assert_eq!(out.refused.len(), 1, "{out:?}");
    let row = c.wait_signed("2026-05").await;
    assert_eq!(registered(&row), 300);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_import_arrives_whole_over_many_chunks_and_months() {
    let unit = Unit::new();
    let (node, store) = start_sharing_store(&unit).await;
    let mut c = node.clients();

    let mut chunks = chunks_of("BIG-A", 15, 2_000, "2026-03-09");
    chunks.extend(chunks_of("BIG-B", 15, 2_000, "2026-04-09"));
    let out = c.import(chunks).await.expect("import answers");
    assert_eq!(out.accepted, 60_000, "{out:?}");
    assert_eq!(out.months_changed, ["2026-03", "2026-04"]);
    assert_eq!(staged(store.as_ref()), 0);
    assert_eq!(entries(store.as_ref(), Cf::CaseIds, b"BIG-"), 60_000);

    let row = c.wait_signed("2026-03..2026-04").await;
    assert_eq!(registered(&row), 60_000);
    let months: Vec<u64> = row
        .months
        .iter()
        .map(|m| common::case_totals(m.total.as_ref()).registered)
        .collect();
    assert_eq!(months, [30_000, 30_000]);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_import_then_a_restart_shows_neither_rows_nor_staging() {
    let mut unit = Unit::with(|c| c.log = "warn,tallytree_node::intake=debug".into());
    let node = unit.spawn_binary().await;
    let import = OpenImport::start(&node.remote());
    let chunks = chunks_of("KILL", 20, 1_000, "2026-05-17");
    for ch in chunks.iter().take(8).cloned() {
        import.send(ch).await;
    }
    // Killed once the node has staged a few chunks, the stream still open.
    wait_until("the node to stage three chunks", || {
        node.log().matches("import chunk staged").count() >= 3
    })
    .await;
    node.kill();
    drop(import);

    // What the killed node left: staged rows, no records, no marks.
    {
        let store = RocksStore::open(&unit.config.data_dir).expect("store opens");
        assert!(staged(&store) >= 3_000, "rows were staged when it died");
        assert_eq!(entries(&store, Cf::CaseIds, b""), 0);
        assert_eq!(entries(&store, Cf::Dirty, b""), 0);
    }

    // A restart removes them before serving.
    unit.config.log = "warn".into();
    let node = unit.spawn_binary().await;
    let mut c = node.clients();
    assert_untouched(&mut c, "2026-05").await;
    node.kill();
    {
        let store = RocksStore::open(&unit.config.data_dir).expect("store opens");
        assert_eq!(staged(&store), 0, "staging emptied at start");
        assert_eq!(entries(&store, Cf::CaseIds, b""), 0);
    }

    // And the same ids import whole afterwards.
    let node = unit.spawn_binary().await;
    let mut c = node.clients();
    let out = c.import(chunks).await.expect("import answers");
    assert_eq!(out.accepted, 20_000, "{out:?}");
    let row = c.wait_signed("2026-05").await;
    assert_eq!(registered(&row), 20_000);
    node.kill();
}
