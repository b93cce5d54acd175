//! A storm of submissions through a federation of real processes, hit by
//! faults: a district, two streets and three villages, each a
//! `tallytree-node` binary, each child pushing to its parent over mutual
//! TLS through a relay, the villages' offices recording cases all through.
//! The faults: SIGKILL of a parent or a child at a random moment (seeded,
//! the seed printed), a partition between a child and its parent that heals,
//! a parent paused with SIGSTOP past its children's submission timeout and
//! resumed. After every fault the driver notes every receipt each child
//! holds and checks every receipt it ever noted against the parent; at the
//! end every total must be exactly what the villages recorded, no summary
//! counted twice, and the stores of the stopped nodes agree, no child
//! having signed two summaries of one revision.
//!
//! A superseded revision that reaches a parent after a later one (a pause or
//! a partition delays pushes past their timeout) is refused and kept as
//! nothing: only two summaries of one revision are evidence of
//! equivocation, and the stores are checked for that.
//!
//! `scripts/faults [SECONDS]` runs the long, ignored version.

mod chaos;
mod fed;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use chaos::{Recorder, Rng, Tree, Witness, held_receipts, stored_receipts};
use fed::{DISTRICT, STREET, STREET_2, VILLAGE_1, VILLAGE_2, VILLAGE_3, past_month};
use tallytree_proto::Month;

/// Pause between two calls of one village's office.
const PACE: Duration = Duration::from_millis(10);

/// What a run did.
#[derive(Default, Debug)]
struct Stats {
    rounds: u64,
    kills: u64,
    partitions: u64,
    pauses: u64,
    keepalive_pauses: u64,
}

/// The federation, its offices recording, and the driver's record.
struct Storm {
    tree: Tree,
    recorders: Vec<(usize, Recorder)>,
    witness: Witness,
    rng: Rng,
    month: Month,
    stats: Stats,
    started: Instant,
}

impl Storm {
    /// Starts the six nodes and the villages' offices.
    async fn start() -> Storm {
        fed::init_log();
        let rng = Rng::from_env();
        let month = past_month();
        let units = [DISTRICT, STREET, STREET_2, VILLAGE_1, VILLAGE_2, VILLAGE_3]
            .into_iter()
            .map(chaos::unit)
            .collect();
        let tree = Tree::start(units, &[]).await;
        let mut recorders = Vec::new();
        for code in [VILLAGE_1, VILLAGE_2, VILLAGE_3] {
            let i = tree.index(code.0);
            let recorder = Recorder::start(tree.procs[i].route(), format!("V{i}"), month, PACE);
            recorders.push((i, recorder));
        }
        Storm {
            tree,
            recorders,
            witness: Witness::new(),
            rng,
            month,
            stats: Stats::default(),
            started: Instant::now(),
        }
    }

    fn elapsed(&self) -> String {
        format!("{:.1}s", self.started.elapsed().as_secs_f64())
    }

    /// Waits until every office has had `n` more calls accepted.
    async fn progress(&self, n: u64) {
        let want: Vec<u64> = self.recorders.iter().map(|(_, r)| r.calls() + n).collect();
        fed::wait_until("the offices recording", || {
            let now: Vec<u64> = self.recorders.iter().map(|(_, r)| r.calls()).collect();
            let want = want.clone();
            async move {
                if now.iter().zip(&want).all(|(a, b)| a >= b) {
                    Ok(())
                } else {
                    Err(format!("{now:?} of {want:?}"))
                }
            }
        })
        .await;
    }

    /// A node picked at random: parents twice as often as villages.
    fn pick_node(&mut self) -> usize {
        let weighted: Vec<usize> = (0..self.tree.procs.len())
            .flat_map(|i| {
                let w = if self.tree.children(i).is_empty() {
                    1
                } else {
                    2
                };
                std::iter::repeat_n(i, w)
            })
            .collect();
        weighted[self.rng.between(0, weighted.len() as u64) as usize]
    }

    /// A node with a parent, picked at random.
    fn pick_child(&mut self) -> usize {
        let children: Vec<usize> = (0..self.tree.procs.len())
            .filter(|i| self.tree.parents[*i].is_some())
            .collect();
        children[self.rng.between(0, children.len() as u64) as usize]
    }

    /// A node with children, picked at random.
    fn pick_parent(&mut self) -> usize {
        let parents: Vec<usize> = (0..self.tree.procs.len())
            .filter(|i| !self.tree.children(*i).is_empty())
            .collect();
        parents[self.rng.between(0, parents.len() as u64) as usize]
    }

    /// Notes every receipt the children hold and checks every one noted
    /// against its parent.
    async fn check(&mut self) {
        self.tree.check(&mut self.witness, self.month).await;
    }

    /// SIGKILL of node `i` at a random moment of the storm, down for a
    /// random while, restarted on its data.
    async fn kill(&mut self, i: usize) {
        let before = self.rng.ms(0, 400);
        let down = self.rng.ms(0, 400);
        tokio::time::sleep(before).await;
        self.tree.procs[i].kill();
        self.stats.kills += 1;
        let label = self.tree.procs[i].label.clone();
        // A child's store, as the kill left it: it still holds every
        // receipt it was seen holding.
        if let Some(p) = self.tree.parents[i] {
            let held = stored_receipts(&self.tree.procs[i].data_dir).await;
            let (region, parent_key) = (self.tree.procs[i].region, self.tree.procs[p].key);
            self.witness.note(region, &parent_key, &held);
            self.witness
                .still_held(region, &held, "in its store after SIGKILL");
        }
        tokio::time::sleep(down).await;
        self.tree.procs[i].restart(None).await;
        eprintln!(
            "[{}] round {}: SIGKILL {label} after {before:?}, down {down:?}, restarted",
            self.elapsed(),
            self.stats.rounds
        );
    }

    /// Cuts the link from child `i` to its parent for `how_long` while the
    /// offices go on recording; nothing is receipted across it meanwhile;
    /// then heals it.
    async fn partition(&mut self, i: usize, how_long: Duration) {
        let (region, label) = (self.tree.procs[i].region, self.tree.procs[i].label.clone());
        let link = self.tree.uplinks[i].as_ref().expect("a child");
        link.cut();
        self.stats.partitions += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let at = self.tree.procs[i].remote();
        let before = held_receipts(&at, region, self.month)
            .await
            .expect("receipts read");
        tokio::time::sleep(how_long.saturating_sub(Duration::from_millis(300))).await;
        let during = held_receipts(&at, region, self.month)
            .await
            .expect("receipts read");
        if during.len() != before.len() {
            self.witness.violation(format!(
                "{label} was given {} receipts across a cut link",
                during.len() - before.len()
            ));
        }
        let link = self.tree.uplinks[i].as_ref().expect("a child");
        link.heal();
        eprintln!(
            "[{}] round {}: partition {label} from its parent for {how_long:?}, healed ({} receipts held)",
            self.elapsed(),
            self.stats.rounds,
            during.len()
        );
    }

    /// Pauses parent `i` with SIGSTOP for `how_long`, past its children's
    /// submission timeout, while the offices go on recording; its children
    /// are given no receipt meanwhile; then resumes it.
    async fn pause(&mut self, i: usize, how_long: Duration) {
        let children = self.tree.children(i);
        let label = self.tree.procs[i].label.clone();
        let timeouts_before: Vec<usize> = children
            .iter()
            .map(|c| timeouts(&self.tree.procs[*c].log()))
            .collect();
        let logs_before: Vec<usize> = children
            .iter()
            .map(|c| self.tree.procs[*c].log().len())
            .collect();
        let connections = |tree: &Tree| -> Vec<u64> {
            children
                .iter()
                .map(|c| {
                    let link = tree.uplinks[*c].as_ref().expect("a child");
                    link.connections.load(std::sync::atomic::Ordering::Relaxed)
                })
                .collect()
        };
        let connections_before = connections(&self.tree);
        self.tree.procs[i].pause();
        self.stats.pauses += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut before = Vec::new();
        for c in &children {
            let p = &self.tree.procs[*c];
            before.push(
                held_receipts(&p.remote(), p.region, self.month)
                    .await
                    .map(|r| r.len())
                    .expect("receipts read"),
            );
        }
        tokio::time::sleep(how_long.saturating_sub(Duration::from_millis(300))).await;
        let mut timed_out = Vec::new();
        for (k, c) in children.iter().enumerate() {
            let p = &self.tree.procs[*c];
            let during = held_receipts(&p.remote(), p.region, self.month)
                .await
                .map(|r| r.len())
                .expect("receipts read");
            if during != before[k] {
                self.witness.violation(format!(
                    "{} was given {} receipts by its paused parent",
                    p.label,
                    during - before[k]
                ));
            }
            timed_out.push(timeouts(&p.log()) - timeouts_before[k]);
        }
        // Connections the children opened meanwhile: a child whose
        // connection was dropped (its keepalive) connects again.
        let reconnected: Vec<u64> = connections(&self.tree)
            .iter()
            .zip(&connections_before)
            .map(|(a, b)| a - b)
            .collect();
        self.tree.procs[i].resume();
        // What the children were told meanwhile, by kind.
        let mut told: BTreeMap<String, usize> = BTreeMap::new();
        for (k, c) in children.iter().enumerate() {
            let log = self.tree.procs[*c].log();
            for line in log[logs_before[k]..]
                .lines()
                .filter(|l| l.contains("push failed"))
            {
                let error = line.split_once("error=").map_or(line, |(_, e)| e);
                *told.entry(error.chars().take(100).collect()).or_default() += 1;
            }
        }
        eprintln!(
            "[{}] round {}: SIGSTOP {label} for {how_long:?}, SIGCONT (its children's pushes timed out {timed_out:?} times, they opened {reconnected:?} new connections; failures by kind: {told:?})",
            self.elapsed(),
            self.stats.rounds
        );
    }

    /// One random fault: mostly kills; with `all`, partitions and pauses
    /// too.
    async fn round(&mut self, all: bool) {
        self.stats.rounds += 1;
        let kind = if all { self.rng.between(0, 10) } else { 0 };
        match kind {
            0..=5 => {
                let i = self.pick_node();
                self.kill(i).await;
            }
            6 | 7 => {
                let i = self.pick_child();
                let how_long = self.rng.ms(1_200, 3_000);
                self.partition(i, how_long).await;
            }
            _ => {
                let i = self.pick_parent();
                let how_long = self.rng.ms(1_500, 3_500);
                self.pause(i, how_long).await;
            }
        }
        self.progress(2).await;
        self.check().await;
    }

    /// Stops the offices, waits for exact totals everywhere, checks the
    /// invariant on the running nodes and on their stores; prints the
    /// figures and fails on any violation.
    async fn finish(mut self) -> Stats {
        let mut books = BTreeMap::new();
        let mut calls = 0;
        let mut failures = 0;
        for (i, r) in self.recorders.drain(..) {
            failures += r.failures.load(std::sync::atomic::Ordering::Relaxed);
            let book = r.finish().await;
            calls += book.len();
            books.insert(i, book.tally(self.month));
        }
        self.tree.converge(&books, self.month).await;
        self.check().await;
        self.tree.stop_and_check_stores(&mut self.witness).await;
        eprintln!(
            "faults: {} rounds, {} kills, {} partitions, {} pauses ({} past the keepalive), {} receipts checked ({} distinct), {} cases recorded ({} failed attempts retried), {} violations, in {}",
            self.stats.rounds,
            self.stats.kills,
            self.stats.partitions,
            self.stats.pauses,
            self.stats.keepalive_pauses,
            self.witness.checked,
            self.witness.receipts(),
            calls,
            failures,
            self.witness.violations.len(),
            self.elapsed()
        );
        assert!(
            self.witness.violations.is_empty(),
            "{:#?}",
            self.witness.violations
        );
        assert!(self.witness.checked > 0, "no receipt checked");
        self.stats
    }
}

/// Submissions a node's log says timed out.
fn timeouts(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("push failed") && l.contains("timed out"))
        .count()
}

/// Eight SIGKILLs at random moments of the storm, of parents and of
/// children.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kills_in_a_storm_lose_no_receipted_summary_and_count_none_twice() {
    let mut storm = Storm::start().await;
    storm.progress(3).await;
    for _ in 0..8 {
        storm.round(false).await;
    }
    let stats = storm.finish().await;
    assert_eq!(stats.kills, 8);
}

/// A village and a street cut off from their parents while the offices
/// record, then healed; and a link whose connections are all dropped at
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_heals_loses_nothing_and_duplicates_nothing() {
    let mut storm = Storm::start().await;
    storm.progress(3).await;
    let village = storm.tree.index(VILLAGE_1.0);
    let street = storm.tree.index(STREET_2.0);
    storm.partition(village, Duration::from_millis(2_500)).await;
    storm.progress(2).await;
    storm.check().await;
    storm.partition(street, Duration::from_millis(2_500)).await;
    storm.progress(2).await;
    storm.check().await;
    for _ in 0..3 {
        storm.tree.uplinks[village]
            .as_ref()
            .expect("a child")
            .reset();
        storm.tree.uplinks[street]
            .as_ref()
            .expect("a child")
            .reset();
        storm.progress(3).await;
    }
    storm.check().await;
    let stats = storm.finish().await;
    assert_eq!(stats.partitions, 2);
}

/// A street paused with SIGSTOP for three seconds, three times its
/// villages' submission timeout, while they record; resumed with SIGCONT.
/// Its villages' pushes time out and are retried; nothing is lost or
/// counted twice, and everything converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_paused_past_its_childrens_timeout_resumes_without_loss_or_duplicates() {
    let mut storm = Storm::start().await;
    storm.progress(3).await;
    let street = storm.tree.index(STREET.0);
    let children = storm.tree.children(street);
    let before: Vec<usize> = children
        .iter()
        .map(|c| timeouts(&storm.tree.procs[*c].log()))
        .collect();
    storm.pause(street, Duration::from_secs(3)).await;
    let after: Vec<usize> = children
        .iter()
        .map(|c| timeouts(&storm.tree.procs[*c].log()))
        .collect();
    assert!(
        before.iter().zip(&after).any(|(b, a)| a > b),
        "no village's push timed out while the street was paused: {before:?} -> {after:?}"
    );
    storm.progress(3).await;
    storm.check().await;
    let stats = storm.finish().await;
    assert_eq!(stats.pauses, 1);
}

/// A street paused past its villages' submission timeout while they
/// record: each village's pushes time out and are retried with its newest
/// revision on the same connection; resumed, the street handles the queued
/// submissions concurrently and may store a newer revision before an older
/// one, which it then refuses as superseded and keeps nothing of: no
/// village that signed every revision once is held to have equivocated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_parent_keeps_no_equivocation_evidence_against_its_honest_children() {
    let mut storm = Storm::start().await;
    storm.progress(3).await;
    let street = storm.tree.index(STREET.0);
    storm.pause(street, Duration::from_secs(3)).await;
    storm.progress(3).await;
    storm.finish().await;
}

/// The long run behind `scripts/faults`: random kills, partitions and
/// pauses for `FAULT_SECONDS` (default 300), or `FAULT_ROUNDS` rounds;
/// one pause lasts past the children's HTTP/2 keepalive (30 s ping, 20 s
/// timeout) when there is time for it (`FAULT_KEEPALIVE_PAUSE=0` skips
/// it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by scripts/faults"]
async fn long_storm() {
    let seconds: u64 = env_number("FAULT_SECONDS").unwrap_or(300);
    let rounds = env_number("FAULT_ROUNDS");
    let keepalive_pause = env_number("FAULT_KEEPALIVE_PAUSE") != Some(0);
    let budget = Duration::from_secs(seconds);
    let mut storm = Storm::start().await;
    storm.progress(3).await;
    // Kept for the final convergence and the stores' checks.
    let reserve = Duration::from_secs(15);
    let long_pause = Duration::from_secs(55);
    let mut paused_long = !keepalive_pause;
    loop {
        let left = budget.saturating_sub(storm.started.elapsed());
        if rounds.is_some_and(|r| storm.stats.rounds >= r) || left < reserve {
            break;
        }
        if !paused_long && storm.stats.rounds >= 3 && left > long_pause + reserve * 2 {
            paused_long = true;
            storm.stats.rounds += 1;
            storm.stats.keepalive_pauses += 1;
            let i = storm.pick_parent();
            storm.pause(i, long_pause).await;
            storm.progress(2).await;
            storm.check().await;
            continue;
        }
        storm.round(true).await;
        if storm.stats.rounds.is_multiple_of(10) {
            eprintln!(
                "[{}] {} rounds: {} kills, {} partitions, {} pauses; {} receipts checked, {} violations",
                storm.elapsed(),
                storm.stats.rounds,
                storm.stats.kills,
                storm.stats.partitions,
                storm.stats.pauses,
                storm.witness.checked,
                storm.witness.violations.len()
            );
        }
    }
    storm.finish().await;
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}
