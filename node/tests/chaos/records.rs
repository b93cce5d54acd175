//! What the offices record, and the book of it that totals are checked against; a seeded random source.

#![allow(dead_code)]

use super::*;

/// The cases one village's office sent, as last sent under each id.
#[derive(Default, Clone, Debug)]
pub(crate) struct Book {
    /// By case id.
    cases: BTreeMap<String, pb::Case>,
}

impl Book {
    /// Notes cases the node accepted.
    pub(crate) fn insert(&mut self, cases: &[pb::Case]) {
        for c in cases {
            self.cases.insert(c.id.clone(), c.clone());
        }
    }

    /// The case recorded under `id`.
    pub(crate) fn get(&self, id: &str) -> &pb::Case {
        &self.cases[id]
    }

    /// Cases noted.
    pub(crate) fn len(&self) -> usize {
        self.cases.len()
    }

    /// The tally the cases of `month` add up to, by intake's own parsing
    /// and the aggregator's own counting.
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
}

/// Records `cases` at `at` as its operator; Err when the call fails (the
/// node may be down: whether the cases were stored is then unknown, and
/// sending them again is harmless). Panics if the node refuses any.
pub(crate) async fn try_record(at: &Remote, cases: &[pb::Case]) -> Result<(), Status> {
    let mut client = IntakeClient::new(at.with_token(OPERATOR_TOKEN));
    let call = client.record_cases(pb::RecordCasesRequest {
        cases: cases.to_vec(),
    });
    let out = tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("record took too long")))?
        .into_inner();
    assert_eq!(out.accepted, cases.len() as u64, "{out:?}");
    assert!(out.refused.is_empty(), "{out:?}");
    Ok(())
}

/// Records `cases` at the node of `route`, retrying until it accepts them
/// (across kills and restarts); returns the failed attempts.
pub(crate) async fn record_surely(route: &Route, cases: &[pb::Case]) -> u64 {
    let mut failed = 0;
    let deadline = tokio::time::Instant::now() + WAIT * 4;
    loop {
        if let Some(at) = route.now()
            && try_record(&at, cases).await.is_ok()
        {
            return failed;
        }
        failed += 1;
        assert!(
            tokio::time::Instant::now() < deadline,
            "cases not accepted after {:?}",
            WAIT * 4
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The cases of call `k` of a storm at a village with case ids
/// `prefix-*`: mostly new cases of four categories, and every third call
/// resolves or escalates the case of two calls before.
pub(crate) fn storm_call(prefix: &str, k: usize, month: Month, book: &Book) -> Vec<pb::Case> {
    let categories = [
        pb::Category::Neighbour,
        pb::Category::Land,
        pb::Category::Labour,
        pb::Category::Debt,
    ];
    if k % 3 == 2 {
        let earlier = book.get(&format!("{prefix}-{}", k - 2));
        let state = if k.is_multiple_of(2) {
            pb::CaseState::Resolved
        } else {
            pb::CaseState::Escalated
        };
        return vec![fed::closed(earlier, state, &fed::day(month, 27))];
    }
    vec![fed::open_case(
        &format!("{prefix}-{k}"),
        categories[k % categories.len()],
        &fed::day(month, 1 + (k % 20) as u64),
    )]
}

/// A village's office recording a storm of cases in the background, across
/// its node's kills and restarts, until told to stop.
pub(crate) struct Recorder {
    /// Set to stop after the call in progress.
    stop: watch::Sender<bool>,
    /// The recording task: the book of what was accepted.
    task: JoinHandle<Book>,
    /// Calls accepted so far.
    pub(crate) calls: Arc<AtomicU64>,
    /// Failed attempts so far (the node down or paused).
    pub(crate) failures: Arc<AtomicU64>,
}

impl Recorder {
    /// Starts recording storm calls with case ids `prefix-*` at the node
    /// of `route`, one every `pace`.
    pub(crate) fn start(route: Route, prefix: String, month: Month, pace: Duration) -> Recorder {
        let (stop, stopped) = watch::channel(false);
        let calls = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(AtomicU64::new(0));
        let (c, f) = (calls.clone(), failures.clone());
        let task = tokio::spawn(async move {
            let mut book = Book::default();
            for k in 0.. {
                if *stopped.borrow() {
                    break;
                }
                let cases = storm_call(&prefix, k, month, &book);
                f.fetch_add(record_surely(&route, &cases).await, Ordering::Relaxed);
                book.insert(&cases);
                c.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(pace).await;
            }
            book
        });
        Recorder {
            stop,
            task,
            calls,
            failures,
        }
    }

    /// Calls accepted so far.
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Stops after the call in progress is accepted; returns the book.
    pub(crate) async fn finish(self) -> Book {
        self.stop.send_replace(true);
        self.task.await.expect("recorder task")
    }
}

/// A small seeded random number generator (SplitMix64): a failing run can
/// be replayed with its seed.
pub(crate) struct Rng(u64);

impl Rng {
    /// From `FAULT_SEED` when set, else from the clock; the seed is
    /// printed.
    pub(crate) fn from_env() -> Rng {
        let seed = std::env::var("FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock after 1970");
                now.as_nanos() as u64 ^ u64::from(std::process::id())
            });
        eprintln!("fault seed: {seed} (replay with FAULT_SEED={seed})");
        Rng(seed)
    }

    /// The next number.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi`.
    pub(crate) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }

    /// A duration of `lo..hi` milliseconds.
    pub(crate) fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.between(lo, hi))
    }
}
