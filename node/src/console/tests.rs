//! The console's routes, in-process (in-memory store, the real router):
//! login and sessions, CSRF, roles, bad input named by field and rule, the
//! headers every answer carries. The browser suite covers the same console
//! over HTTPS against real nodes.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{Request, StatusCode, header},
    response::Response,
};
use http_body_util::BodyExt;
use tallytree_proto::{RegionCode, SigningKey};
use tower::ServiceExt;

use super::{Console, listener::PeerAddr};
use crate::{
    access::{Access, Credentials, Role},
    clock::Clock,
    config::{AccessConfig, ConsoleConfig, IntakeConfig, SignerConfig},
    context::NodeContext,
    identity::Identity,
    intake::Intake,
    ledger::Ledger,
    signer::Signer,
    store::MemStore,
};

const VILLAGE: &str = "210214001001";

struct Fixture {
    _dir: tempfile::TempDir,
    app: axum::Router,
    signer: Signer,
    credentials: std::path::PathBuf,
    creds: Credentials,
    reader: String,
    operator: String,
    auditor: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let credentials = dir.path().join("credentials.toml");
    let mut creds = Credentials::default();
    let reader = creds.add("统计科", Role::Reader, "").expect("add");
    let operator = creds.add("网格员", Role::Operator, "").expect("add");
    let auditor = creds.add("审计员", Role::Auditor, "").expect("add");
    creds.save(&credentials).expect("save");
    let access = Arc::new(
        Access::open(&AccessConfig {
            credentials_file: credentials.clone(),
            public_figures: false,
        })
        .expect("access"),
    );
    let ledger = Arc::new(Ledger::new(Arc::new(MemStore::new())));
    let identity = Arc::new(Identity::new(
        RegionCode::parse(VILLAGE).expect("code"),
        "玉皇庙社区".into(),
        SigningKey::generate().expect("key").0,
        None,
    ));
    let clock = Clock::new(8);
    let ctx = Arc::new(
        NodeContext::open(ledger.clone(), identity, clock, Default::default()).expect("open"),
    );
    let intake = Intake::new(ledger, clock, IntakeConfig::default());
    let console = Arc::new(Console::new(
        ctx.clone(),
        intake,
        access,
        ConsoleConfig::default(),
    ));
    Fixture {
        _dir: dir,
        app: console.router(),
        signer: Signer::new(ctx, SignerConfig::default()),
        credentials,
        creds,
        reader,
        operator,
        auditor,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn send(app: &axum::Router, req: Request<Body>) -> Answer {
    let mut req = req;
    req.extensions_mut()
        .insert(ConnectInfo(PeerAddr(SocketAddr::from((
            [127, 0, 0, 1],
            5000,
        )))));
    let r: Response = app.clone().oneshot(req).await.expect("answer");
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = r.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get(path: &str, cookie: &str) -> Request<Body> {
    Request::get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .expect("request")
}

fn post(path: &str, cookie: &str, form: &str) -> Request<Body> {
    Request::post(path)
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .expect("request")
}

fn set_cookie(a: &Answer, name: &str) -> Option<String> {
    a.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn value(cookie: &str) -> &str {
    cookie
        .split(';')
        .next()
        .and_then(|p| p.split_once('='))
        .map_or("", |(_, v)| v)
}

/// Logs in with `token`; returns the session cookie and the page's CSRF
/// token.
async fn login(f: &Fixture, token: &str) -> (String, String) {
    let page = send(&f.app, get("/login", "")).await;
    let login = set_cookie(&page, "tt_login").expect("login cookie");
    let csrf = value(&login).to_owned();
    let form = format!("token={token}&csrf={csrf}&next=%2Fentry");
    let a = send(&f.app, post("/login", &format!("tt_login={csrf}"), &form)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let session = set_cookie(&a, "tt_session").expect("session cookie");
    for flag in ["Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(session.contains(flag), "{session}");
    }
    let cookie = format!("tt_session={}", value(&session));
    let home = send(&f.app, get(&format!("/figures/{VILLAGE}"), &cookie)).await;
    let csrf = home
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a form token")
        .to_owned();
    (cookie, csrf)
}

#[tokio::test]
async fn nothing_is_read_without_a_session_and_a_bad_token_is_refused() {
    let f = fixture();
    let a = send(
        &f.app,
        get(&format!("/figures/{VILLAGE}?period=2026-10"), ""),
    )
    .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let to = a.headers[header::LOCATION].to_str().expect("location");
    assert!(to.starts_with("/login?next=/figures/"), "{to}");
    let forged = send(&f.app, get("/entry", "tt_session=forged")).await;
    assert_eq!(forged.status, StatusCode::SEE_OTHER);

    // A login without the form's own cookie (another site's form) fails.
    let a = send(
        &f.app,
        post("/login", "", &format!("token={}&csrf=x", f.reader)),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let page = send(&f.app, get("/login", "")).await;
    let csrf = value(&set_cookie(&page, "tt_login").expect("cookie")).to_owned();
    let a = send(
        &f.app,
        post(
            "/login",
            &format!("tt_login={csrf}"),
            &format!("token=tt_wrong&csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("令牌无效"), "{}", a.body);
    assert!(set_cookie(&a, "tt_session").is_none());
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_its_server_time() {
    let f = fixture();
    let (cookie, _) = login(&f, &f.reader).await;
    let a = send(&f.app, get(&format!("/figures/{VILLAGE}"), &cookie)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("玉皇庙社区"));
    for (name, want) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(a.headers[name], want, "{name}");
    }
    let csp = a.headers["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(
        a.headers["server-timing"]
            .to_str()
            .expect("t")
            .starts_with("app;dur=")
    );
    // Assets: hashed names, cached for good, gzipped when asked.
    let url = super::assets::ECHARTS.url();
    let asset = send(
        &f.app,
        Request::get(url)
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_eq!(asset.headers[header::CONTENT_ENCODING], "gzip");
    assert!(
        asset.headers[header::CACHE_CONTROL]
            .to_str()
            .expect("cc")
            .contains("immutable")
    );
    let stale = send(&f.app, get("/assets/echarts.common.0000.min.js", "")).await;
    assert_eq!(stale.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_input_is_named_by_field_and_rule() {
    let f = fixture();
    let (cookie, _) = login(&f, &f.reader).await;
    for (path, status, says) in [
        ("/figures/99999", StatusCode::BAD_REQUEST, "region (99999)"),
        (
            &format!("/figures/{VILLAGE}?period=2026-13") as &str,
            StatusCode::BAD_REQUEST,
            "period (2026-13)",
        ),
        (
            "/figures/210100000000",
            StatusCode::NOT_FOUND,
            "not in the subtree",
        ),
        (
            &format!("/figures/{VILLAGE}/secrets.csv") as &str,
            StatusCode::BAD_REQUEST,
            "table (secrets.csv)",
        ),
        (
            &format!("/summary/{VILLAGE}/2026-1") as &str,
            StatusCode::BAD_REQUEST,
            "period (2026-1)",
        ),
        (
            &format!("/findings/{VILLAGE}?rule=too.good") as &str,
            StatusCode::BAD_REQUEST,
            "rule (too.good): unknown rule",
        ),
        (
            &format!("/findings/{VILLAGE}?severity=high") as &str,
            StatusCode::BAD_REQUEST,
            "severity (high): one of notice, warning",
        ),
        (
            &format!("/findings/{VILLAGE}/other.csv") as &str,
            StatusCode::BAD_REQUEST,
            "table (other.csv): findings.csv",
        ),
    ] {
        let a = send(&f.app, get(path, &cookie)).await;
        assert_eq!(a.status, status, "{path}: {}", a.body);
        assert!(a.body.contains(says), "{path}: {}", a.body);
    }
}

#[tokio::test]
async fn the_findings_view_lists_what_needs_checking() {
    let f = fixture();
    let (cookie, _) = login(&f, &f.reader).await;
    let a = send(&f.app, get(&format!("/findings/{VILLAGE}"), &cookie)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("需核实数据"), "{}", a.body);
    let csv = send(
        &f.app,
        get(&format!("/findings/{VILLAGE}/findings.csv?bom=1"), &cookie),
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.body.starts_with('\u{feff}'), "{}", csv.body);
    assert!(csv.body.contains("编号"), "{}", csv.body);
    let anonymous = send(&f.app, get(&format!("/findings/{VILLAGE}"), "")).await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn roles_decide_and_a_revoked_credential_ends_its_session() {
    let mut f = fixture();
    let (reader, reader_csrf) = login(&f, &f.reader.clone()).await;
    let a = send(&f.app, get("/entry", &reader)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(a.body.contains("统计科"), "{}", a.body);
    let form = format!(
        "csrf={reader_csrf}&id=A-1&category=neighbour&registered_on=2026-10-02&state=in_progress"
    );
    let a = send(&f.app, post("/entry/case", &reader, &form)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = send(&f.app, get(&format!("/proof/{VILLAGE}/2026-10"), &reader)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let (auditor, _) = login(&f, &f.auditor.clone()).await;
    let a = send(&f.app, get(&format!("/proof/{VILLAGE}/2026-10"), &auditor)).await;
    assert_eq!(
        a.status,
        StatusCode::NOT_FOUND,
        "nothing signed yet: {}",
        a.body
    );

    f.creds.revoke("统计科");
    f.creds.save(&f.credentials).expect("save");
    let a = send(&f.app, get(&format!("/figures/{VILLAGE}"), &reader)).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "the session ended");
}

#[tokio::test]
async fn an_operator_records_with_the_form_token_and_sees_intakes_rules() {
    let f = fixture();
    let (cookie, csrf) = login(&f, &f.operator.clone()).await;
    let case = "id=A-1&category=neighbour&registered_on=2026-10-02&state=in_progress";
    let a = send(&f.app, post("/entry/case", &cookie, case)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "no form token");
    let a = send(
        &f.app,
        post("/entry/case", &cookie, &format!("csrf=forged&{case}")),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "a forged form token");

    let a = send(
        &f.app,
        post("/entry/case", &cookie, &format!("csrf={csrf}&{case}")),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("已保存"), "{}", a.body);
    assert!(
        a.body.contains("A-1"),
        "the open case is listed: {}",
        a.body
    );

    let bad =
        "id=A-2&category=neighbour&registered_on=2026-10-02&state=resolved&closed_on=2026-09-01";
    let a = send(
        &f.app,
        post("/entry/case", &cookie, &format!("csrf={csrf}&{bad}")),
    )
    .await;
    assert!(a.body.contains("closed_on"), "{}", a.body);
    let a = send(
        &f.app,
        post("/entry/case", &cookie, &format!("csrf={csrf}&id=A-3")),
    )
    .await;
    assert!(a.body.contains("未保存"), "{}", a.body);

    // Signed, the month shows its revision and the figures their source.
    f.signer.sign_dirty().expect("sign");
    let a = send(
        &f.app,
        get(&format!("/figures/{VILLAGE}?period=2026-10"), &cookie),
    )
    .await;
    assert!(a.body.contains("修订版本 1"), "{}", a.body);
    let csv = send(
        &f.app,
        get(
            &format!("/figures/{VILLAGE}/trend.csv?period=2026-10&bom=1"),
            &cookie,
        ),
    )
    .await;
    assert!(csv.body.starts_with('\u{feff}'), "{}", csv.body);
    assert!(csv.body.contains("2026-10,1,0,0"), "{}", csv.body);
    let json = send(
        &f.app,
        get(&format!("/summary/{VILLAGE}/2026-10/dsse.json"), &cookie),
    )
    .await;
    assert!(json.body.contains("\"payloadType\""), "{}", json.body);
}

#[tokio::test]
async fn an_upload_is_previewed_row_by_row_and_stored_only_when_confirmed() {
    let f = fixture();
    let (cookie, csrf) = login(&f, &f.operator.clone()).await;
    let file = "编号,类别,登记日期,状态,办结日期\nU-1,邻里,2026-10-02,在办,\nU-2,traffic,2026-10-02,在办,\n";
    let boundary = "XBOUNDARYX";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\ncases\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cases.csv\"\r\nContent-Type: text/csv\r\n\r\n{file}\r\n--{boundary}--\r\n"
    );
    let req = Request::post("/upload")
        .header(header::COOKIE, &cookie)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .expect("request");
    let a = send(&f.app, req).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("category (traffic)"), "{}", a.body);
    assert!(a.body.contains("将保存"), "{}", a.body);
    let upload = a
        .body
        .split("name=\"upload\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("an upload id")
        .to_owned();
    // Nothing stored yet; all or nothing refuses it; the valid row only.
    let a = send(
        &f.app,
        post(
            "/upload/confirm",
            &cookie,
            &format!("csrf={csrf}&upload={upload}"),
        ),
    )
    .await;
    assert!(a.body.contains("未保存任何行"), "{}", a.body);
    let again = send(
        &f.app,
        post(
            "/upload/confirm",
            &cookie,
            &format!("csrf={csrf}&upload={upload}"),
        ),
    )
    .await;
    assert_eq!(
        again.status,
        StatusCode::BAD_REQUEST,
        "a confirmation is used once"
    );
}
