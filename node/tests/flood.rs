//! Overload and abuse against a real node over TLS: while one child floods
//! Submit, an anonymous client floods the listener with handshakes and a
//! reader floods Query, an honest child's submissions are all receipted and
//! an operator's query is answered; what is refused is refused with
//! RESOURCE_EXHAUSTED and a message saying which limit; the node's memory
//! stays bounded; oversized headers are refused; and afterwards the node
//! serves as before.

mod tls_support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::future::join_all;
use tallytree_proto::pb::{
    self, federation_client::FederationClient, intake_client::IntakeClient,
    query_client::QueryClient,
};
use tls_support::{District, STREET_A, STREET_B, Street, bearer, last_month};
use tonic::{Code, Status};

/// The process's peak resident memory, in KiB (Linux).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Submits `summary` as `street`, retrying what the node sheds as busy
/// (as the pusher does, with backoff); the number of attempts it took.
async fn submit_until_receipted(
    district: &District,
    street: &Street,
    summary: pb::Envelope,
) -> Result<u32, Status> {
    let channel = district
        .child_channel(street.identity())
        .await
        .expect("the honest child connects");
    let mut client = FederationClient::new(channel);
    for attempt in 1..=400 {
        match client
            .submit(pb::SubmitRequest {
                summary: Some(summary.clone()),
                ..Default::default()
            })
            .await
        {
            Ok(_) => return Ok(attempt),
            Err(s) if s.code() == Code::ResourceExhausted => {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(s) => return Err(s),
        }
    }
    Err(Status::deadline_exceeded("never receipted"))
}

#[derive(Default)]
struct Outcomes {
    ok: AtomicU64,
    exhausted: AtomicU64,
    stale: AtomicU64,
    other: AtomicU64,
}

impl Outcomes {
    fn count(&self, result: &Result<(), Status>) {
        let counter = match result {
            Ok(()) => &self.ok,
            Err(s) if s.code() == Code::ResourceExhausted => {
                let m = s.message();
                assert!(
                    m.contains("rate limit")
                        || m.contains("node busy")
                        || m.contains("Too many active requests"),
                    "a shed call says which limit: {m}"
                );
                &self.exhausted
            }
            // Flooded revisions overtake each other: a lower one after a
            // higher is refused as superseded, as the revision rules say.
            Err(s)
                if s.code() == Code::FailedPrecondition && s.message().contains("superseded") =>
            {
                &self.stale
            }
            Err(_) => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_party_does_not_crowd_out_the_others() {
    let district = District::start_with(|c| {
        c.limits.max_concurrent_calls = 24;
        c.limits.max_concurrent_submissions = 2;
        c.limits.submit_per_second = 20;
        c.limits.submit_burst = 20;
        c.limits.intake_per_second = 20;
        c.limits.intake_burst = 20;
        c.tls.handshake_timeout_ms = 500;
        c.tls.max_handshakes = 8;
    })
    .await;
    let mut honest = district.enrol(STREET_A).await;
    let mut flooder = district.enrol(STREET_B).await;
    let baseline = peak_rss_kib();

    // The flooding child: 600 valid submissions, 48 at a time, on one
    // connection.
    let flood_summaries: Vec<pb::Envelope> = (0..600).map(|_| flooder.next_summary()).collect();
    let flood_channel = district
        .child_channel(flooder.identity())
        .await
        .expect("the flooder connects");
    let submits = Arc::new(Outcomes::default());
    let submit_flood = {
        let submits = submits.clone();
        async move {
            for batch in flood_summaries.chunks(48) {
                let calls = batch.iter().map(|s| {
                    let mut client = FederationClient::new(flood_channel.clone());
                    let s = s.clone();
                    let submits = submits.clone();
                    async move {
                        let r = client
                            .submit(pb::SubmitRequest {
                                summary: Some(s),
                                ..Default::default()
                            })
                            .await
                            .map(|_| ());
                        submits.count(&r);
                    }
                });
                join_all(calls).await;
            }
        }
    };

    // A reader floods Query: 1,500 calls, 64 at a time, on one connection.
    let queries = Arc::new(Outcomes::default());
    let query_channel = district.channel().await;
    let query_flood = {
        let queries = queries.clone();
        let reader = district.reader.clone();
        async move {
            for _ in 0..(1_500 / 64) {
                let calls = (0..64).map(|_| {
                    let mut client = QueryClient::new(query_channel.clone());
                    let queries = queries.clone();
                    let req = bearer(
                        pb::TallyRequest {
                            region: String::new(),
                            period: last_month().to_string(),
                            depth: 1,
                        },
                        &reader,
                    );
                    async move {
                        let r = client.tally(req).await.map(|_| ());
                        queries.count(&r);
                    }
                });
                join_all(calls).await;
            }
        }
    };

    // Connections that never finish their handshake hold no more than
    // the handshake limit, and only for the handshake timeout.
    let addr = district.addr;
    let idle_flood = async move {
        let mut idle = Vec::new();
        for _ in 0..64 {
            if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
                idle.push(s);
            }
        }
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        idle.len()
    };

    // Meanwhile the honest child submits five revisions, and the operator
    // asks for the figures.
    let honest_summaries: Vec<pb::Envelope> = (0..5).map(|_| honest.next_summary()).collect();
    let honest_work = async {
        let mut attempts = Vec::new();
        for s in honest_summaries {
            attempts.push(
                submit_until_receipted(&district, &honest, s)
                    .await
                    .expect("the honest child's summary is receipted"),
            );
        }
        let mut q = QueryClient::new(district.channel().await);
        let mut answered = None;
        for attempt in 1..=400 {
            match q
                .tally(bearer(
                    pb::TallyRequest {
                        region: String::new(),
                        period: last_month().to_string(),
                        depth: 1,
                    },
                    &district.operator,
                ))
                .await
            {
                Ok(r) => {
                    answered = Some((attempt, r.into_inner()));
                    break;
                }
                Err(s) if s.code() == Code::ResourceExhausted => {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Err(s) => panic!("the operator's query failed: {s:?}"),
            }
        }
        (
            attempts,
            answered.expect("the operator's query is answered"),
        )
    };

    let ((), (), idle, (attempts, (query_attempts, figures))) =
        tokio::join!(submit_flood, query_flood, idle_flood, honest_work);

    let (ok, shed, stale, other) = (
        submits.ok.load(Ordering::Relaxed),
        submits.exhausted.load(Ordering::Relaxed),
        submits.stale.load(Ordering::Relaxed),
        submits.other.load(Ordering::Relaxed),
    );
    eprintln!(
        "Submit flood: {ok} receipted, {shed} shed, {stale} overtaken, {other} other; Query flood: {} answered, {} shed; honest attempts {attempts:?}, operator query attempts {query_attempts}; {idle} idle connections",
        queries.ok.load(Ordering::Relaxed),
        queries.exhausted.load(Ordering::Relaxed),
    );
    assert!(shed > 0, "the flooding child was never limited");
    assert_eq!(
        other, 0,
        "the flood is refused only by the limits and the revision rules"
    );
    assert_eq!(queries.other.load(Ordering::Relaxed), 0);
    let street_row = figures
        .rows
        .iter()
        .find(|r| r.region == honest.region.to_string())
        .expect("the honest street is counted");
    assert!(street_row.verified);

    // Memory stays bounded: the floods moved hundreds of calls through a
    // node whose limits hold a few dozen at once.
    let grown_mib = peak_rss_kib().saturating_sub(baseline) / 1024;
    eprintln!("peak memory grew by {grown_mib} MiB");
    assert!(grown_mib < 256, "peak memory grew by {grown_mib} MiB");

    // Oversized headers are refused, and the node keeps serving.
    let mut big = bearer(pb::RecordCasesRequest::default(), &district.operator);
    big.metadata_mut()
        .insert("x-padding", "x".repeat(64 << 10).parse().expect("ascii"));
    assert!(
        IntakeClient::new(district.channel().await)
            .record_cases(big)
            .await
            .is_err(),
        "a 64 KiB header block was accepted"
    );

    // Afterwards the honest child is served at once.
    let s = honest.next_summary();
    assert_eq!(
        submit_until_receipted(&district, &honest, s)
            .await
            .expect("served"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_credential_over_its_intake_rate_does_not_limit_another() {
    let district = District::start_with(|c| {
        c.limits.intake_per_second = 1;
        c.limits.intake_burst = 5;
    })
    .await;
    let second = {
        let config = tls_support::district_config(district.dir.path());
        let mut creds = tallytree_node::access::Credentials::load(&config.access.credentials_file)
            .expect("load");
        let token = creds
            .add("村委会录入员", tallytree_node::access::Role::Operator, "")
            .expect("add");
        creds.save(&config.access.credentials_file).expect("save");
        token
    };
    let mut intake = IntakeClient::new(district.channel().await);
    let call = |token: &str| bearer(pb::RecordCasesRequest::default(), token);
    for _ in 0..5 {
        intake
            .record_cases(call(&district.operator))
            .await
            .expect("within the burst");
    }
    let err = intake
        .record_cases(call(&district.operator))
        .await
        .expect_err("over the rate");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(
        err.message()
            .contains("rate limit: credential 值班员 makes more than 1 intake calls a second"),
        "{err:?}"
    );
    intake
        .record_cases(call(&second))
        .await
        .expect("another credential is not limited");
}
