//! A parent whose disk fills up: the street's data directory is a small
//! tmpfs mounted by the test, filled with a file until writes fail. The
//! street, a real `tallytree-node` process, must give its village no
//! receipt for what it could not store (the village is refused with a
//! clear error and keeps retrying), must keep serving reads, and must take
//! the village's summaries again once space is freed; the invariant holds
//! throughout: every receipt the village holds names a summary the street
//! holds, nothing is counted twice, totals are exact.
//!
//! Mounting needs root (CAP_SYS_ADMIN): without it each test says so and
//! passes without checking anything.

mod chaos;
mod fed;

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use chaos::{Book, Tree, Witness, held_receipts, receipt_of, record_surely, revisions_at};
use fed::{STREET, VILLAGE_1, past_month};
use tallytree_proto::{Month, pb};

/// The street's node, then the village's.
const STREET_NODE: usize = 0;
/// The village's node.
const VILLAGE: usize = 1;

/// A tmpfs mounted on a directory for the length of a test.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "24m") on `dir`, created if needed.
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs {
            dir: dir.to_owned(),
        })
    }

    /// Bytes free on it.
    fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.dir)
            .output()
            .expect("df runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .expect("df prints the free bytes")
    }

    /// Fills it with a file until a write fails; returns the file.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler created");
        for size in [1 << 20, 64 << 10, 4 << 10, 512, 1] {
            let buf = vec![0x5a_u8; size];
            while matches!(f.write(&buf), Ok(n) if n > 0) {}
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a node killed a moment ago may still hold a file open.
        let unmounted = Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            eprintln!(
                "could not unmount {}: unmount it by hand",
                self.dir.display()
            );
        }
    }
}

/// `n` new cases `{prefix}-{i}` of `month`.
fn cases(prefix: &str, n: usize, month: Month) -> Vec<pb::Case> {
    (0..n)
        .map(|i| {
            fed::open_case(
                &format!("{prefix}-{i}"),
                pb::Category::Labour,
                &fed::day(month, 1 + (i % 25) as u64),
            )
        })
        .collect()
}

/// The village's latest signed revision.
async fn latest_revision(tree: &Tree, month: Month) -> u64 {
    let v = &tree.procs[VILLAGE];
    chaos::revisions(&v.remote(), v.region, month)
        .await
        .last()
        .map(|(_, s)| s.revision)
        .expect("the village signed")
}

/// The revisions of the village's receipts.
async fn receipted(tree: &Tree, month: Month) -> Vec<u64> {
    let v = &tree.procs[VILLAGE];
    let mut revs: Vec<u64> = held_receipts(&v.remote(), v.region, month)
        .await
        .expect("receipts read")
        .iter()
        .map(|r| receipt_of(r).revision)
        .collect();
    revs.sort_unstable();
    revs
}

/// The revisions of the village's summary the street holds.
async fn held_by_street(tree: &Tree, month: Month) -> Vec<u64> {
    revisions_at(
        &tree.procs[STREET_NODE].remote(),
        tree.procs[VILLAGE].region,
        month,
    )
    .await
    .expect("the street answers reads")
    .iter()
    .map(|(_, v)| v.revision)
    .collect()
}

/// Whether the village holds a receipt for its latest revision.
async fn caught_up(tree: &Tree, month: Month) -> bool {
    let latest = latest_revision(tree, month).await;
    receipted(tree, month).await.contains(&latest)
}

/// Waits until the street's overall health status is `want` (1 SERVING,
/// 2 NOT_SERVING).
async fn wait_health(tree: &Tree, want: i32) {
    fed::wait_until("the street's health status", || async {
        let status = tonic_health::pb::health_client::HealthClient::new(
            tree.procs[STREET_NODE].remote().channel(),
        )
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|r| r.into_inner().status);
        match status {
            Ok(s) if s == want => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// The street's data directory on a tmpfs of `size`, filled: the village
/// is refused and given no receipt, the street serves reads; space freed,
/// the street takes the village's summaries again by itself, and the
/// invariant holds.
async fn a_full_disk(size: &str) {
    fed::init_log();
    let month = past_month();
    let street = chaos::unit(STREET);
    let disk = match Tmpfs::mount(&street.config.data_dir, size) {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs for the street's data ({e}); this test needs root"
            );
            return;
        }
    };
    let mut tree = Tree::start(vec![street, chaos::unit(VILLAGE_1)], &[]).await;
    let route = tree.procs[VILLAGE].route();
    let mut book = Book::default();
    let c = cases("A", 5, month);
    record_surely(&route, &c).await;
    book.insert(&c);
    tree.converge(&BTreeMap::from([(VILLAGE, book.tally(month))]), month)
        .await;
    assert!(caught_up(&tree, month).await);

    // Full: the street's writes fail (a write may still fit in a page its
    // log holds, so the village records until the street refuses, saying
    // that its disk is full).
    let filler = disk.fill();
    eprintln!("{size}: filled, {} bytes free", disk.free());
    let village_log_before = tree.procs[VILLAGE].log().len();
    let deadline = tokio::time::Instant::now() + fed::WAIT;
    let refusal = loop {
        let refused = tree.procs[VILLAGE].log()[village_log_before..]
            .lines()
            .find(|l| {
                l.contains("parent did not accept the summary")
                    && l.contains("storage is full: nothing was stored; retry later")
            })
            .map(str::to_owned);
        if let Some(line) = refused {
            break line;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the street still takes summaries on a full disk"
        );
        let c = cases(&format!("B{}", book.len()), 3, month);
        record_surely(&route, &c).await;
        book.insert(&c);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("{size}: the village is told: {refusal}");
    let street_log = tree.procs[STREET_NODE].log();
    let logged = street_log
        .lines()
        .find(|l| l.contains("No space left on device"))
        .unwrap_or("(nothing)");
    eprintln!("{size}: the street logs: {logged}");

    // While full: more revisions, retried; none receipted, none held by
    // the street; the street keeps serving reads and stays up.
    let receipts_full = receipted(&tree, month).await;
    let held_full = held_by_street(&tree, month).await;
    for k in 0..3 {
        let c = cases(&format!("F{k}"), 4, month);
        record_surely(&route, &c).await;
        book.insert(&c);
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let latest = latest_revision(&tree, month).await;
    assert_eq!(
        receipted(&tree, month).await,
        receipts_full,
        "a receipt given while the disk is full"
    );
    assert!(
        !receipts_full.contains(&latest),
        "revision {latest} receipted on a full disk"
    );
    assert_eq!(held_by_street(&tree, month).await, held_full);
    assert!(
        !held_full.contains(&latest),
        "the street holds revision {latest}"
    );
    let row = fed::rows(&tree.procs[STREET_NODE].remote(), "", &month.to_string(), 1)
        .await
        .expect("the street answers Query.Tally on a full disk");
    assert_eq!(row.len(), 2, "{row:?}");
    assert!(
        chaos::identity(&tree.procs[STREET_NODE].remote())
            .await
            .is_some()
    );
    // Its health says so: NOT_SERVING while full (tonic-health's 2).
    wait_health(&tree, 2).await;
    eprintln!("{size}: the street's health check on a full disk: NOT_SERVING");
    assert!(tree.procs[STREET_NODE].running(), "the street crashed");

    // Space freed.
    std::fs::remove_file(&filler).expect("filler removed");
    eprintln!("{size}: freed, {} bytes free", disk.free());
    fed::wait_until("the street taking summaries again", || async {
        if caught_up(&tree, month).await {
            Ok(())
        } else {
            Err("not yet".to_owned())
        }
    })
    .await;
    eprintln!("{size}: the street took the village's summaries again by itself");
    wait_health(&tree, 1).await;
    eprintln!("{size}: the street's health check: SERVING again");

    // And it goes on; everything converges; the invariant holds.
    let c = cases("C", 5, month);
    record_surely(&route, &c).await;
    book.insert(&c);
    let mut witness = Witness::new();
    tree.check(&mut witness, month).await;
    tree.converge(&BTreeMap::from([(VILLAGE, book.tally(month))]), month)
        .await;
    tree.check(&mut witness, month).await;
    tree.stop_and_check_stores(&mut witness).await;
    assert!(witness.violations.is_empty(), "{:#?}", witness.violations);
    eprintln!(
        "{size}: {} receipts checked, {} held",
        witness.checked,
        witness.receipts()
    );
    drop(tree);
    drop(disk);
}

/// A 96 MiB disk: once the filler is removed the street resumes by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_on_a_full_disk_gives_no_receipt_serves_reads_and_resumes_when_space_is_freed() {
    a_full_disk("96m").await;
}

/// A 24 MiB disk: once the filler is removed there is room for RocksDB's
/// reserve (the largest write buffer, 8 MiB, every column family the
/// node's own, the default one included) and the street resumes by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_on_a_small_full_disk_gives_no_receipt_and_resumes_when_space_is_freed() {
    a_full_disk("24m").await;
}
