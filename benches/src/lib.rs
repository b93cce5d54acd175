//! Fixtures shared by the criterion benches (`benches/`) and the load
//! harness (`src/bin/load.rs`): deterministic case and task records spread
//! over a window of months, and a realistic signed summary.
//!
//! Every bench draws its input from here, so the figures in
//! docs/BENCHMARKS.md are measured over the same kind of data.
//!
//! # Layout
//!
//! - [`Window`]: the days the generated records fall in.
//! - [`case_records`], [`task_records`]: records as the derivation sees them.
//! - [`case_to_pb`]: the same case as the Intake service receives it.
//! - [`street_summary`]: a street's roll-up with its villages, as a parent
//!   receives and verifies it.
//! - [`ring_verify_limit`]: the reference every figure is read against.
//! - [`client`]: how the harnesses reach the nodes they start: TLS verified
//!   by the unit's CA and a named credential, as every client of a node.

use chrono::{Datelike, Days, NaiveDate};
use rand::{Rng, SeedableRng, rngs::StdRng};
use tallytree_aggregator::{
    CaseRecord, CaseState, ChildEntry, SummaryView, Tally, TaskRecord, TaskState, derive,
};
use tallytree_proto::{Category, Digest, Month, RegionCode, pb};

/// The street whose summary the benches sign and verify (铁西街道 of 普兰店区).
pub const STREET: &str = "210214001000";

/// Villages reporting to [`STREET`] in [`street_summary`].
pub const VILLAGES: u32 = 15;

/// Handling period given to every generated case, in days.
pub const DEADLINE_DAYS: u64 = 30;

/// An inclusive range of days that generated records fall in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First day a record may be registered on.
    pub first: NaiveDate,
    /// Last day a record may be registered or closed on; never after the
    /// node's today, so that intake accepts every generated row.
    pub last: NaiveDate,
}

impl Window {
    /// 2026-01-01 to 2026-10-31: ten whole months, for the pure benches.
    pub fn fixed() -> Window {
        Window::months(Month::new(2026, 1), Month::new(2026, 10))
            .expect("2026-01..2026-10 is a valid window")
    }

    /// The `count` whole months before `current` (the node's current month),
    /// so every day lies in the past wherever and whenever the harness runs.
    pub fn before(current: Month, count: u32) -> Option<Window> {
        let first = (0..count).try_fold(current, |m, _| previous(m))?;
        let last = previous(current)?;
        Window::months(Some(first), Some(last))
    }

    /// From the first day of `first` to the last day of `last`.
    fn months(first: Option<Month>, last: Option<Month>) -> Option<Window> {
        let (first, last) = (first?, last?);
        let last = last.next().first_day().pred_opt()?;
        Some(Window {
            first: first.first_day(),
            last,
        })
    }

    /// Number of days in the window.
    pub fn days(&self) -> u64 {
        // `last >= first` by construction.
        (self.last - self.first).num_days().unsigned_abs() + 1
    }

    /// The `offset`-th day, clamped to the last one.
    fn day(&self, offset: u64) -> NaiveDate {
        self.first
            .checked_add_days(Days::new(offset))
            .filter(|d| *d <= self.last)
            .unwrap_or(self.last)
    }
}

/// The month before `m`.
fn previous(m: Month) -> Option<Month> {
    let (year, month) = (m.year(), m.month());
    if month == 1 {
        Month::new(year - 1, 12)
    } else {
        Month::new(year, month - 1)
    }
}

/// `n` cases registered across `window`, every category, about 70 %
/// resolved (most of them on time), 10 % escalated and 20 % in progress.
/// The same `seed` gives the same cases.
pub fn case_records(n: usize, window: &Window, seed: u64) -> Vec<CaseRecord> {
    let mut rng = StdRng::seed_from_u64(seed);
    let days = window.days();
    (0..n)
        .map(|_| {
            let registered_on = window.day(rng.random_range(0..days));
            let category = Category::ALL[rng.random_range(0..Category::COUNT)];
            let deadline = registered_on + Days::new(DEADLINE_DAYS);
            let roll = rng.random_range(0..100u32);
            let (state, closed_on) = if roll < 70 {
                // Mostly within the deadline, some late.
                let after = rng.random_range(0..DEADLINE_DAYS + 15);
                (CaseState::Resolved, Some(registered_on + Days::new(after)))
            } else if roll < 80 {
                let after = rng.random_range(0..20);
                (CaseState::Escalated, Some(registered_on + Days::new(after)))
            } else {
                (CaseState::InProgress, None)
            };
            CaseRecord {
                category,
                registered_on,
                state,
                // Never after the window, so never in the node's future.
                closed_on: closed_on.map(|d| d.min(window.last)),
                deadline,
            }
        })
        .collect()
}

/// `n` tasks due across `window`, about 60 % completed.
pub fn task_records(n: usize, window: &Window, seed: u64) -> Vec<TaskRecord> {
    let mut rng = StdRng::seed_from_u64(seed);
    let days = window.days();
    (0..n)
        .map(|_| TaskRecord {
            deadline: window.day(rng.random_range(0..days)),
            state: if rng.random_bool(0.6) {
                TaskState::Completed
            } else {
                TaskState::InProgress
            },
        })
        .collect()
}

/// `YYYY-MM-DD`, the form Intake accepts.
fn iso(d: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

/// The case as the Intake service receives it, under `id`.
pub fn case_to_pb(id: String, case: &CaseRecord) -> pb::Case {
    pb::Case {
        id,
        category: case.category.to_pb() as i32,
        registered_on: iso(case.registered_on),
        state: match case.state {
            CaseState::InProgress => pb::CaseState::InProgress,
            CaseState::Resolved => pb::CaseState::Resolved,
            CaseState::Escalated => pb::CaseState::Escalated,
        } as i32,
        closed_on: case.closed_on.map(iso).unwrap_or_default(),
        deadline: iso(case.deadline),
    }
}

/// A street's summary for 2026-03 as its district receives it: its own
/// tally, [`VILLAGES`] village references and a total that adds up, every
/// category filled. About the size of a real roll-up's payload.
pub fn street_summary() -> pb::Summary {
    let street = RegionCode::parse(STREET).expect("STREET is a valid code");
    let march =
        Window::months(Month::new(2026, 3), Month::new(2026, 3)).expect("2026-03 is a valid month");
    let today = march.last;
    let tally_of = |seed: u64| -> Tally {
        let cases = case_records(400, &march, seed);
        let tasks = task_records(40, &march, seed);
        derive::derive(&cases, &tasks, today)
    };
    let local = tally_of(0);
    let mut total = local;
    let mut children = Vec::new();
    for v in 1..=u64::from(VILLAGES) {
        let village = RegionCode::from_u64(street.as_u64() + v).expect("village code");
        total = total
            .checked_add(&tally_of(v))
            .expect("small counts do not overflow");
        children.push(ChildEntry {
            region: village,
            revision: v,
            digest: Digest::of(&v.to_be_bytes()),
        });
    }
    SummaryView {
        region: street,
        name: "铁西街道".into(),
        parent: street.parent(),
        period: Month::new(2026, 3).expect("2026-03"),
        revision: 7,
        issued_at_ms: 1_775_000_000_000,
        local,
        total,
        children,
        children_expected: VILLAGES + 1,
    }
    .to_pb()
}

/// Raw ring Ed25519 verifications per second with `threads` threads
/// verifying at once (`per_thread` each) over realistic summary PAEs: the
/// limit every throughput figure is read against, measured in the same run.
///
/// The threads cycle through 256 distinct keys, messages and signatures, as
/// every real verification has its own: the same input verified again and
/// again runs about 4.5 % faster (ring's variable-time scalar
/// multiplication takes the same branches every time; median of 30
/// interleaved rounds, twice), a speed no stream of real signatures reaches.
pub fn ring_verify_limit(threads: usize, per_thread: usize) -> f64 {
    use tallytree_proto::{SigningKey, envelope::pae, statement::Statement};
    let inputs: Vec<_> = (0..256u32)
        .map(|i| {
            let (key, _) = SigningKey::generate().expect("system random source");
            let mut payload = [7u8; 400];
            payload[..4].copy_from_slice(&i.to_le_bytes());
            let message = pae(pb::Summary::PAYLOAD_TYPE, &payload);
            let sig = key.sign(&message);
            (key.public_key(), message, sig)
        })
        .collect();
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads.max(1) {
            let inputs = &inputs;
            s.spawn(move || {
                for i in 0..per_thread {
                    let (public, message, sig) = &inputs[(i + t * 97) % inputs.len()];
                    assert!(public.verify(message, sig), "reference signature verifies");
                }
            });
        }
    });
    (threads.max(1) * per_thread) as f64 / start.elapsed().as_secs_f64()
}

/// User + system CPU seconds of this process so far (Linux /proc).
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The ring verify limit, sampled several times in one run: a shared
/// host's speed drifts by a third within a minute, so a run is read against
/// samples taken before, during (with the run paused) and after it.
#[derive(Debug)]
pub struct LimitSamples {
    cores: usize,
    /// Each sample, verifications per second on every core at once.
    pub samples: Vec<f64>,
    /// Time spent sampling while the run was under way (not the run's).
    pub paused_secs: f64,
    /// CPU seconds spent sampling while the run was under way.
    pub paused_cpu: f64,
}

impl LimitSamples {
    /// No samples yet, for `cores` threads at once.
    pub fn new(cores: usize) -> LimitSamples {
        LimitSamples {
            cores,
            samples: Vec::new(),
            paused_secs: 0.0,
            paused_cpu: 0.0,
        }
    }

    /// A sample before or after the run.
    pub fn sample(&mut self, per_thread: usize) {
        self.samples.push(ring_verify_limit(self.cores, per_thread));
    }

    /// A sample while the run is paused: its time and CPU are not the run's.
    pub fn sample_during(&mut self, per_thread: usize) {
        let start = std::time::Instant::now();
        let cpu = cpu_seconds();
        self.sample(per_thread);
        self.paused_secs += start.elapsed().as_secs_f64();
        if let (Some(a), Some(b)) = (cpu, cpu_seconds()) {
            self.paused_cpu += b - a;
        }
    }

    /// The mean of the samples.
    pub fn mean(&self) -> f64 {
        self.samples.iter().sum::<f64>() / self.samples.len().max(1) as f64
    }

    /// The lowest sample.
    pub fn low(&self) -> f64 {
        self.samples.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// The highest sample.
    pub fn high(&self) -> f64 {
        self.samples.iter().copied().fold(0.0, f64::max)
    }
}

pub mod client {
    //! The harnesses' side of a node's transport security: every node they
    //! start serves TLS by its unit's CA (made by `tallytree init`) and
    //! answers only named credentials, and the harnesses call it as any
    //! client does, over TLS verified by that CA and with a token.

    use std::{net::SocketAddr, time::Duration};

    use anyhow::Context;
    use tonic::{
        Request, Status,
        metadata::{Ascii, MetadataValue},
        service::{Interceptor, interceptor::InterceptedService},
        transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
    };

    /// The endpoint of the node on `addr`, verified by the unit's CA
    /// certificate `ca_pem`, every call bounded by `timeout`.
    pub fn endpoint(addr: SocketAddr, ca_pem: &str, timeout: Duration) -> anyhow::Result<Endpoint> {
        Endpoint::from_shared(format!("https://{addr}"))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .tcp_nodelay(true)
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)))
            .context("TLS client configuration")
    }

    /// Adds `authorization: Bearer <token>` to every call.
    #[derive(Clone, Debug)]
    pub struct Bearer(MetadataValue<Ascii>);

    impl Bearer {
        /// The header for `token`.
        pub fn new(token: &str) -> anyhow::Result<Bearer> {
            Ok(Bearer(
                format!("Bearer {token}")
                    .parse()
                    .context("a token is printable ASCII")?,
            ))
        }
    }

    impl Interceptor for Bearer {
        fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
            request
                .metadata_mut()
                .insert("authorization", self.0.clone());
            Ok(request)
        }
    }

    /// A channel whose calls carry a credential.
    pub type Authed = InterceptedService<Channel, Bearer>;

    /// `channel` with `token` on every call.
    pub fn authed(channel: Channel, token: &str) -> anyhow::Result<Authed> {
        Ok(InterceptedService::new(channel, Bearer::new(token)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_cases_stay_inside_the_window_and_are_well_formed() {
        let window = Window::fixed();
        for case in case_records(5_000, &window, 7) {
            assert!(case.registered_on >= window.first && case.registered_on <= window.last);
            match case.state {
                CaseState::InProgress => assert!(case.closed_on.is_none()),
                _ => {
                    let closed = case.closed_on.expect("closed");
                    assert!(closed >= case.registered_on && closed <= window.last);
                }
            }
        }
        assert_eq!(case_records(10, &window, 1), case_records(10, &window, 1));
    }

    #[test]
    fn the_window_before_a_month_ends_the_month_before() {
        let current = Month::new(2026, 11).expect("month");
        let window = Window::before(current, 10).expect("window");
        assert_eq!(window, Window::fixed());
        let january = Month::new(2027, 1).expect("month");
        let window = Window::before(january, 2).expect("window");
        assert_eq!(window.first.to_string(), "2026-11-01");
        assert_eq!(window.last.to_string(), "2026-12-31");
    }

    #[test]
    fn the_street_summary_is_well_formed_and_adds_up() {
        let view = SummaryView::from_pb(&street_summary()).expect("valid summary");
        assert_eq!(view.children.len(), VILLAGES as usize);
        assert!(
            Category::ALL
                .iter()
                .all(|c| view.local.category(*c).registered > 0)
        );
        // About a kilobyte (1,129 bytes when written): the PAE the crypto
        // benches sign and verify is that long.
        let len = prost::Message::encoded_len(&street_summary());
        assert!((512..4096).contains(&len), "{len}");
        let parsed = case_to_pb("C1".into(), &case_records(1, &Window::fixed(), 3)[0]);
        assert_eq!(parsed.registered_on.len(), 10);
    }
}
