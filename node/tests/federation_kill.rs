//! A parent killed with SIGKILL in the middle of a storm of submissions, and
//! restarted on the same port and data, neither loses a summary it
//! acknowledged nor counts one twice. The parent is the real
//! `tallytree-node` binary; its three villages run in-process, push to it
//! over mutual TLS, and record cases all through: before the kill, while
//! the parent is down, and after it is back.

mod fed;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use fed::{
    Casebook, Remote, STREET, Unit, VILLAGE_1, VILLAGE_2, bind_any, closed, day, enrol, install,
    open_case, open_store, past_month, revisions, rows, serve, sum, wait_total, wait_until,
};
use tallytree_aggregator::Tally;
use tallytree_node::store::{Cf, layout};
use tallytree_proto::{Digest, Month, RegionCode, pb, statement};
use tokio::sync::watch;

/// A third village under the street.
const VILLAGE_4: (&str, &str) = ("210214001003", "瓦房社区");
/// record_cases calls per village.
const CALLS: usize = 48;

/// The parent, running as the real binary.
struct ParentProcess {
    /// The process.
    child: Child,
    /// Its config file.
    config_path: PathBuf,
    /// Its log (stdout and stderr, appended across restarts).
    log_path: PathBuf,
}

impl ParentProcess {
    /// Writes `unit`'s config listening on `127.0.0.1:0`, starts the binary
    /// and waits for the address it bound; then writes that address into
    /// the config, so a restart comes back on the port its children push to.
    async fn spawn(unit: &Unit) -> (ParentProcess, SocketAddr) {
        let mut config = unit.config.clone();
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let config_path = unit.dir.path().join("node.toml");
        std::fs::write(&config_path, config.to_toml()).expect("config written");
        let log_path = unit.dir.path().join("node.log");
        let mut parent = ParentProcess {
            child: start(&config_path, &log_path),
            config_path,
            log_path,
        };
        let file = config.address_file();
        let child = &mut parent.child;
        let addr = wait_until("the parent reporting its address", || {
            let exited = child.try_wait().expect("child status");
            let reported = file.read().expect("address file readable");
            async move {
                assert!(exited.is_none(), "tallytree-node exited: {exited:?}");
                reported.ok_or_else(|| "no listen.addr yet".to_owned())
            }
        })
        .await;
        config.listen = addr;
        std::fs::write(&parent.config_path, config.to_toml()).expect("config written");
        (parent, addr)
    }

    /// Kills the process with SIGKILL: no shutdown, no final signing.
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL sent");
        self.child.wait().expect("reaped");
    }

    /// Starts the binary again with the same config (port and data). The
    /// port is free between the kill and the restart, as a real parent's
    /// configured port is.
    fn restart(&mut self) {
        self.child = start(&self.config_path, &self.log_path);
    }

    /// Waits until the process answers queries at `at` (over TLS, as a
    /// reader); fails at once if it exits.
    async fn wait_serving(&mut self, at: &Remote, month: Month) {
        let child = &mut self.child;
        wait_until(&format!("the parent serving on {}", at.addr), || {
            let exited = child.try_wait().expect("child status");
            async move {
                assert!(exited.is_none(), "tallytree-node exited: {exited:?}");
                rows(at, "", &month.to_string(), 0)
                    .await
                    .map(|_| ())
                    .map_err(|s| format!("{s:?}"))
            }
        })
        .await;
    }
}

impl Drop for ParentProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            eprintln!("--- parent log ---\n{log}");
        }
    }
}

fn start(config_path: &PathBuf, log_path: &PathBuf) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .expect("log file");
    Command::new(env!("CARGO_BIN_EXE_tallytree-node"))
        .arg("--config")
        .arg(config_path)
        .env_remove("TALLYTREE_LOG")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("tallytree-node starts")
}

/// The cases of call `k` at a village with case ids `prefix-*`: mostly new
/// cases, and every third call resolves or escalates an earlier one.
fn storm_call(prefix: &str, k: usize, month: Month, book: &Casebook) -> Vec<pb::Case> {
    let categories = [
        pb::Category::Neighbour,
        pb::Category::Land,
        pb::Category::Labour,
        pb::Category::Debt,
    ];
    let registered = day(month, 1 + (k % 20) as u64);
    if k % 3 == 2 {
        let earlier = book.get(&format!("{prefix}-{}", k - 2));
        let state = if k.is_multiple_of(2) {
            pb::CaseState::Resolved
        } else {
            pb::CaseState::Escalated
        };
        return vec![closed(earlier, state, &day(month, 27))];
    }
    vec![open_case(
        &format!("{prefix}-{k}"),
        categories[k % categories.len()],
        &registered,
    )]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parent_killed_mid_storm_loses_no_acknowledged_summary_and_counts_none_twice() {
    fed::init_log();
    let month = past_month();

    // The parent: the real binary on the port it bound, so it can come back
    // on it.
    let parent_unit = Unit::new(STREET);
    let (mut parent, addr) = ParentProcess::spawn(&parent_unit).await;
    let at = &parent_unit.remote(addr);
    parent.wait_serving(at, month).await;

    // Three villages in-process, pushing to it over mutual TLS, enrolled
    // there.
    let mut villages = Vec::new();
    for v in [VILLAGE_1, VILLAGE_2, VILLAGE_4] {
        let mut unit = Unit::new(v);
        unit.push_to(addr);
        let node = serve(&unit.config, bind_any().await).await;
        let enrolled = enrol(at, unit.region(), v.1, unit.public_key, &unit.tls_csr).await;
        install(&node.remote(), enrolled).await;
        villages.push((unit, node));
    }

    // The storm: each village records CALLS times, as fast as it can. Half
    // way it waits for the kill (if the kill has not come yet); from three
    // quarters on it waits for the restart, so a quarter of the calls land
    // while the parent is down.
    let progress = Arc::new(AtomicUsize::new(0));
    let (killed_tx, killed) = watch::channel(false);
    let (restarted_tx, restarted) = watch::channel(false);
    let mut storms = Vec::new();
    for (i, (_, node)) in villages.iter().enumerate() {
        let village = node.remote();
        let progress = progress.clone();
        let (mut killed, mut restarted) = (killed.clone(), restarted.clone());
        storms.push(tokio::spawn(async move {
            let prefix = format!("V{i}");
            let mut book = Casebook::default();
            for k in 0..CALLS {
                if k == CALLS / 2 {
                    killed.wait_for(|k| *k).await.expect("kill signal");
                }
                if k == CALLS * 3 / 4 {
                    restarted.wait_for(|r| *r).await.expect("restart signal");
                }
                let cases = storm_call(&prefix, k, month, &book);
                book.record(&village, cases).await;
                progress.fetch_add(1, Ordering::SeqCst);
            }
            book
        }));
    }

    // Kill once the parent has acknowledged something from every village,
    // while the storm is running.
    let codes: Vec<RegionCode> = villages.iter().map(|(u, _)| u.region()).collect();
    let mut held_before_kill: BTreeMap<RegionCode, Vec<(u64, Digest)>> = BTreeMap::new();
    for code in &codes {
        let code = *code;
        wait_until(&format!("the parent accepting {code}"), || async move {
            let held = revisions(at, code, month).await;
            if held.is_empty() {
                Err("nothing yet".to_owned())
            } else {
                Ok(())
            }
        })
        .await;
    }
    for code in &codes {
        let held = revisions(at, *code, month).await;
        held_before_kill.insert(
            *code,
            held.iter()
                .map(|(env, v)| (v.revision, Digest::of(&env.payload)))
                .collect(),
        );
    }
    parent.kill();
    let killed_at_ms = chrono::Utc::now().timestamp_millis();
    killed_tx.send(true).expect("storms listening");

    // While the parent is down the villages keep recording (and signing).
    let outage_calls = villages.len() * (CALLS * 3 / 4);
    wait_until("the storm reaching three quarters", || {
        let n = progress.load(Ordering::SeqCst);
        async move {
            if n >= outage_calls {
                Ok(())
            } else {
                Err(format!("{n} calls"))
            }
        }
    })
    .await;
    parent.restart();
    parent.wait_serving(at, month).await;
    restarted_tx.send(true).expect("storms listening");

    let mut books = Vec::new();
    for s in storms {
        books.push(s.await.expect("storm task"));
    }

    // Converged: the parent's total is exactly the sum of what the villages
    // recorded, so no summary is counted twice and none is missing.
    let expected: Vec<Tally> = books.iter().map(|b| b.tally(month)).collect();
    let row = wait_total(at, month, sum(&expected)).await;
    assert_eq!(row.children_reported, 3, "{row:?}");

    // Everything the parent held before the kill it still holds.
    for (code, before) in &held_before_kill {
        let after: Vec<(u64, Digest)> = revisions(at, *code, month)
            .await
            .iter()
            .map(|(env, v)| (v.revision, Digest::of(&env.payload)))
            .collect();
        for r in before {
            assert!(after.contains(r), "{code}: revision {} lost", r.0);
        }
        let revs: Vec<u64> = after.iter().map(|r| r.0).collect();
        assert!(
            revs.windows(2).all(|w| w[0] < w[1]),
            "{code}: one summary per revision: {revs:?}"
        );
    }

    // The parent's latest summary counts each village once and adds up.
    let own = revisions(at, parent_unit.region(), month).await;
    let (_, rollup) = own.last().expect("the parent signed");
    assert_eq!(rollup.children.len(), 3, "{rollup:?}");
    assert_eq!(rollup.total, sum(&expected));

    // Every receipt a village holds names a summary the parent still has.
    let parent_key = parent_unit.public_key;
    let mut receipts_before_kill = 0;
    for ((unit, node), book) in villages.into_iter().zip(&books) {
        node.stop().await;
        let code = unit.region();
        let held = revisions(at, code, month).await;
        let store = open_store(&unit.config.data_dir).await;
        let receipts = layout::envelopes(&store, Cf::Receipts, b"").expect("receipts");
        assert!(!receipts.is_empty(), "{code} holds receipts");
        for env in &receipts {
            let r: pb::Receipt = statement::open(env, &parent_key).expect("signed by the parent");
            assert_eq!(r.region, code.to_string());
            assert_eq!(r.period, month.to_string());
            let digest = Digest::from_slice(&r.digest).expect("32 bytes");
            let kept = held
                .iter()
                .any(|(e, v)| v.revision == r.revision && Digest::of(&e.payload) == digest);
            assert!(
                kept,
                "{code}: receipt for revision {} ({}) but the parent does not hold it",
                r.revision,
                digest.short()
            );
            if r.received_at_ms < killed_at_ms {
                receipts_before_kill += 1;
            }
        }
        // The roll-up counts the village's own latest revision, which has
        // its recorded figures; nothing waits in its outbox.
        let own = layout::latest_summary(&store, code, month)
            .expect("read")
            .expect("the village signed")
            .view()
            .expect("view");
        assert_eq!(own.total, book.tally(month));
        let counted = rollup
            .children
            .iter()
            .find(|c| c.region == code)
            .expect("counted");
        assert_eq!(counted.revision, own.revision, "{code}");
        assert_eq!(layout::outbox(&store).expect("outbox"), vec![]);
    }
    assert!(
        receipts_before_kill > 0,
        "some receipts were signed before the kill"
    );
}
