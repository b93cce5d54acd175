//! `federation console`: the province's web console over a Liaoning-sized
//! subtree (by default 14 cities × 7 districts × 14 streets × 12 villages,
//! about 17,900 units), 12 months of it loaded through real
//! Federation.Submit calls over mutual TLS, as the cities would push it.
//! Then, over real HTTPS with a reader's session: the drill-down page and
//! the completeness view at the province and a city (server time from
//! `Server-Timing`, p50 and p95), the whole-province CSV export, the page
//! weight transferred on a first load and after, and Query.Tally at depth
//! 4 over gRPC.

use std::{sync::Arc, time::Instant};

use anyhow::{Context, Result, bail, ensure};
use http_body_util::{BodyExt, Full};
use hyper::{Request, body::Bytes};
use tallytree_benches::client;
use tallytree_cli::init::{InitArgs, init};
use tallytree_node::{
    Node,
    access::{Credentials, Role},
    config::Config,
    tls::client::parent_endpoint,
};
use tallytree_proto::{
    Month, RegionCode,
    pb::{self, enrolments_client::EnrolmentsClient, query_client::QueryClient},
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{enrol_children, run_round, subtree};

/// One HTTPS connection to the console, HTTP/1.1, with the session cookie.
struct Browser {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    cookie: String,
}

/// An answer: status, headers, body as transferred.
struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn server_ms(&self) -> Option<f64> {
        let v = self.headers.get("server-timing")?.to_str().ok()?;
        v.split("dur=").nth(1)?.trim().parse().ok()
    }

    fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                let pair = v.split(';').next()?;
                let (k, val) = pair.split_once('=')?;
                (k == name).then(|| val.to_owned())
            })
    }
}

impl Browser {
    async fn connect(addr: std::net::SocketAddr, ca_pem: &str) -> Result<Browser> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in tallytree_node::tls::server::rustls_pem(ca_pem)? {
            roots.add(cert)?;
        }
        let mut config =
            rustls::ClientConfig::builder_with_provider(tallytree_node::tls::server::provider())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(rustls::pki_types::ServerName::try_from("localhost")?, tcp)
            .await?;
        let (send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        Ok(Browser {
            send,
            cookie: String::new(),
        })
    }

    async fn request(&mut self, method: &str, path: &str, form: Option<String>) -> Result<Answer> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("accept-encoding", "gzip");
        if !self.cookie.is_empty() {
            req = req.header("cookie", &self.cookie);
        }
        let body = match form {
            Some(f) => {
                req = req.header("content-type", "application/x-www-form-urlencoded");
                Full::new(Bytes::from(f))
            }
            None => Full::new(Bytes::new()),
        };
        self.send.ready().await?;
        let response = self.send.send_request(req.body(body)?).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Logs in with `token` as a browser does: the login page's form token
    /// and its cookie, then the form.
    async fn login(&mut self, token: &str) -> Result<()> {
        let page = self.request("GET", "/login", None).await?;
        let csrf = page.set_cookie("tt_login").context("the login cookie")?;
        self.cookie = format!("tt_login={csrf}");
        let form = format!("token={token}&csrf={csrf}&next=%2F");
        let answer = self.request("POST", "/login", Some(form)).await?;
        let session = answer
            .set_cookie("tt_session")
            .with_context(|| format!("no session (HTTP {})", answer.status))?;
        self.cookie = format!("tt_session={session}");
        Ok(())
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Times `path` `samples` times: server-time p50 and p95, and the bytes
/// transferred once.
async fn time(b: &mut Browser, path: &str, samples: usize) -> Result<(f64, f64, usize)> {
    let mut server = Vec::with_capacity(samples);
    let mut size = 0;
    for _ in 0..samples {
        let a = b.request("GET", path, None).await?;
        ensure!(a.status == 200, "{path}: HTTP {}", a.status);
        server.push(a.server_ms().context("no Server-Timing")?);
        size = a.body.len();
    }
    server.sort_by(f64::total_cmp);
    Ok((quantile(&server, 0.5), quantile(&server, 0.95), size))
}

/// Runs the console bench.
pub(crate) async fn run(cities: u32, fanout: &[u32], samples: usize) -> Result<()> {
    let province = RegionCode::parse("210000000000")?;
    let dir = tempfile::tempdir()?;
    let made = init(&InitArgs {
        code: province,
        name: "辽宁省".into(),
        dir: dir.path().join("province"),
        listen: "127.0.0.1:0".parse()?,
        operator_name: "load harness".into(),
        parent: None,
        server_names: Vec::new(),
        plaintext: false,
        console: None,
    })?;
    let config = Config::load(&made.config)?;
    let ca_pem = std::fs::read_to_string(&config.tls.ca_file)?;
    let mut creds = Credentials::load(&config.access.credentials_file)?;
    let reader = creds.add("bench reader", Role::Reader, "")?;
    creds.save(&config.access.credentials_file)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let console = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (addr, console_addr) = (listener.local_addr()?, console.local_addr()?);
    let url = format!("https://{addr}");
    let node = Node::open(config)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(node.serve(listener, Some(console), async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let timeout = std::time::Duration::from_secs(600);
    let operator = client::endpoint(addr, &ca_pem, timeout)?.connect().await?;
    let mut enrol = EnrolmentsClient::new(client::authed(operator.clone(), &made.operator_token)?);
    let codes = (0..cities)
        .map(|i| subtree::child_code(province, i))
        .collect::<Result<Vec<_>>>()?;
    let (units, tls) = enrol_children(&mut enrol, province, codes, fanout).await?;
    let per_city = units.first().map_or(0, subtree::Unit::descendants);
    let total_units = 1 + units.len() * (1 + per_city);
    let now_month = Month::of(chrono::Utc::now().date_naive()).context("month")?;
    let last = Month::from_index(now_month.index() - 1).context("month")?;
    let months: Vec<Month> = (0..12)
        .rev()
        .filter_map(|i| Month::from_index(last.index() - i))
        .collect();
    println!(
        "辽宁省 with {cities} cities of {per_city} units each: {total_units} units × {} months ({}..{})",
        months.len(),
        months[0],
        last
    );

    // Sign everything first: the load measures nothing, it fills the node.
    let now = chrono::Utc::now().timestamp_millis();
    let started = Instant::now();
    let mut per_city_requests = Vec::new();
    for unit in &units {
        let mut list = Vec::new();
        for (i, m) in months.iter().enumerate() {
            let mut envs = Vec::with_capacity(per_city);
            let (_, _, env) = unit.seal(*m, 1, now, &mut envs)?;
            let mut enrolments = Vec::new();
            if i == 0 {
                unit.enrolments(now, &mut enrolments);
            }
            list.push(pb::SubmitRequest {
                summary: Some(env),
                descendants: envs,
                enrolments,
                revocations: Vec::new(),
            });
        }
        per_city_requests.push(list);
    }
    println!(
        "signed {} summaries in {:.1} s",
        total_units * months.len() - months.len(),
        started.elapsed().as_secs_f64()
    );
    let mut channels = Vec::new();
    for t in &tls {
        channels.push(parent_endpoint(&url, Some(t), timeout)?.connect().await?);
    }
    let receipts = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    run_round(per_city_requests, 4, &channels, &receipts).await?;
    let got = receipts.load(std::sync::atomic::Ordering::Relaxed);
    ensure!(
        got == u64::from(cities) * months.len() as u64,
        "{got} receipts"
    );
    println!(
        "loaded through {got} Federation.Submit calls over mutual TLS in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Let the province sign its own roll-ups.
    let mut query = QueryClient::new(client::authed(operator.clone(), &reader)?)
        .max_decoding_message_size(1 << 30);
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let r = query
            .tally(pb::TallyRequest {
                region: String::new(),
                period: last.to_string(),
                depth: 0,
            })
            .await?
            .into_inner();
        let row = r.rows.first().context("a row")?;
        if row.months.len() == 1 && !row.pending && row.children_reported == cities {
            break;
        }
        if Instant::now() > deadline {
            bail!("the province did not sign its roll-up");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    let mut b = Browser::connect(console_addr, &ca_pem).await?;
    b.login(&reader).await?;
    let city = units.first().map(|u| u.code).context("a city")?;
    let district = subtree::child_code(city, 0)?;
    println!();
    println!(
        "console, server time over {samples} requests each (Server-Timing), HTTPS, a reader's session:"
    );
    for (what, path) in [
        (
            "drill-down, province",
            format!("/figures/{province}?period={last}"),
        ),
        (
            "drill-down, a city",
            format!("/figures/{city}?period={last}"),
        ),
        (
            "completeness, province",
            format!("/completeness/{province}?period={last}"),
        ),
        (
            "completeness, a district",
            format!("/completeness/{district}?period={last}"),
        ),
    ] {
        let (p50, p95, size) = time(&mut b, &path, samples).await?;
        println!(
            "  {what:<26} p50 {p50:>7.1} ms   p95 {p95:>7.1} ms   {:>6.1} KB transferred",
            size as f64 / 1024.0
        );
    }
    let (p50, p95, size) = time(
        &mut b,
        &format!("/export/{province}?period={last}"),
        samples.min(10),
    )
    .await?;
    println!(
        "  {:<26} p50 {p50:>7.1} ms   p95 {p95:>7.1} ms   {:>6.1} KB transferred ({total_units} units)",
        "whole-province CSV",
        size as f64 / 1024.0
    );

    // Page weight: the page and every asset it links on a first load;
    // after it, the assets come from the browser's cache (immutable).
    let page = b
        .request("GET", &format!("/figures/{province}?period={last}"), None)
        .await?;
    let html = String::from_utf8_lossy(&decompress(&page)?).into_owned();
    let mut first = page.body.len();
    for asset in html
        .split("\"/assets/")
        .skip(1)
        .filter_map(|s| s.split('"').next())
    {
        let a = b.request("GET", &format!("/assets/{asset}"), None).await?;
        ensure!(a.status == 200, "/assets/{asset}: HTTP {}", a.status);
        first += a.body.len();
    }
    println!(
        "  page weight, gzipped: first load {:.0} KB (page and assets), after it {:.1} KB (the page; assets cached immutable)",
        first as f64 / 1024.0,
        page.body.len() as f64 / 1024.0
    );

    // Query.Tally at depth 4 over gRPC.
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let r = query
            .tally(pb::TallyRequest {
                region: String::new(),
                period: last.to_string(),
                depth: 4,
            })
            .await?
            .into_inner();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        rows = r.rows.len();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "Query.Tally depth 4, one month: {rows} rows, p50 {:.0} ms, max {:.0} ms (client time, 5 calls)",
        quantile(&times, 0.5),
        times[times.len() - 1]
    );
    let _ = stop.send(());
    server.await??;
    Ok(())
}

fn decompress(a: &Answer) -> Result<Vec<u8>> {
    let gz = a
        .headers
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    if !gz {
        return Ok(a.body.to_vec());
    }
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&a.body[..]), &mut out)?;
    Ok(out)
}
