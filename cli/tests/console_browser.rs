//! The web console in a real browser (Debian's chromium, headless, driven
//! through chromedriver) against `tallytree demo --small`'s federation:
//! real nodes, real TLS, real data. A reader logs in at the province and
//! drills down to the village, a figure is checked against the gRPC query,
//! the silent village is found first in the completeness view, the village
//! operator records a case on a phone-sized screen and sees the new
//! revision, uploads a file with bad rows and sees them refused by line,
//! exports CSV and prints the monthly report to PDF.
//!
//! Without chromium and chromedriver the suite is skipped, except under CI
//! (`CI=true`), where that is a failure. With `TALLYTREE_SCREENSHOTS=DIR`
//! it saves screenshots of the main views there (docs/screenshots).

#![cfg(target_os = "linux")]

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{demo::Demo, tallytree};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/lib/chromium/chromium";
/// Longest a page element or a signature is waited for.
const WAIT: Duration = Duration::from_secs(60);

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_string_lossy()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// chromedriver and chromium, or why not; under CI a missing browser fails.
fn browser() -> Option<PathBuf> {
    let driver = which("chromedriver");
    if let (Some(d), true) = (&driver, Path::new(CHROMIUM).is_file()) {
        return Some(d.clone());
    }
    let why = "chromium and chromium-driver are not installed (scripts/ensure-deps installs them)";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true: the browser suite must run, but {why}");
    }
    eprintln!("skipping the browser suite: {why}");
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn start_driver(binary: &Path) -> Driver {
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver does not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    driver
}

async fn open_browser(driver: &Driver, profile: &Path, width: u32, height: u32) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "acceptInsecureCerts": true,
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--no-first-run", "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.display()),
                format!("--window-size={width},{height}"),
                "--lang=zh-CN",
            ],
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a browser session")
}

/// The text of the first element matching `css`, waited for.
async fn text(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

async fn login(c: &Client, url: &str, token: &str) {
    c.goto(url).await.expect("goto");
    let field = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("token"))
        .await
        .expect("the login page");
    field.send_keys(token).await.expect("type the token");
    c.find(Locator::Css("section.login button"))
        .await
        .expect("login button")
        .click()
        .await
        .expect("log in");
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("header.top .user"))
        .await
        .expect("logged in");
}

async fn screenshot(c: &Client, name: &str) {
    let Some(dir) = std::env::var_os("TALLYTREE_SCREENSHOTS") else {
        return;
    };
    // Charts draw after load; they are still, but give them their frame.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let png = c.screenshot().await.expect("screenshot");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).expect("screenshot written");
}

/// Downloads `path` with the page's session, as the browser does: the
/// bytes.
async fn download(c: &Client, path: &str) -> Vec<u8> {
    let script = r#"
        const [path, done] = arguments;
        fetch(path).then(r => r.arrayBuffer()).then(b => {
            let s = '';
            for (const x of new Uint8Array(b)) { s += String.fromCharCode(x); }
            done(btoa(s));
        });"#;
    let v = c
        .execute_async(script, vec![json!(path)])
        .await
        .expect("download");
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap_or_default())
        .expect("base64")
}

/// Fills the case form as a person would choose its values (dates set
/// directly: typing into a date field depends on the browser's locale).
async fn fill_case(c: &Client, id: &str, registered: &str, state: &str, closed: &str) {
    c.execute(
        r#"const [id, registered, state, closed] = arguments;
           const f = document.getElementById('case-form').elements;
           f['id'].value = id; f['category'].value = 'labour';
           f['registered_on'].value = registered; f['state'].value = state;
           f['closed_on'].value = closed;"#,
        vec![json!(id), json!(registered), json!(state), json!(closed)],
    )
    .await
    .expect("fill the case form");
}

/// Reads a line the demo printed: the text after `prefix`.
fn printed(demo: &Demo, prefix: &str) -> String {
    demo.transcript
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix).map(|r| r.trim().to_owned()))
        .unwrap_or_else(|| panic!("the demo did not print {prefix:?}:\n{}", demo.show()))
}

/// A cell of `table`'s row whose first cells contain `row_text`.
async fn cell(c: &Client, table: &str, row_text: &str, column: usize) -> String {
    let script = r#"
        const [table, rowText, column] = arguments;
        for (const tr of document.querySelectorAll('table#' + table + ' tbody tr')) {
            if (tr.cells[0].textContent.trim() === rowText || tr.cells[1]?.textContent.trim() === rowText) {
                return tr.cells[column].textContent.trim();
            }
        }
        return null;"#;
    let v = c
        .execute(script, vec![json!(table), json!(row_text), json!(column)])
        .await
        .expect("script");
    v.as_str()
        .unwrap_or_else(|| panic!("no row {row_text:?} in table {table}"))
        .to_owned()
}

/// Fetches `path` with the page's session, as the browser downloads it:
/// the first bytes (hex) and the text.
async fn fetch(c: &Client, path: &str) -> (String, String) {
    let script = r#"
        const [path, done] = arguments;
        fetch(path).then(r => r.arrayBuffer()).then(b => {
            const bytes = new Uint8Array(b);
            const hex = Array.from(bytes.slice(0, 3)).map(x => x.toString(16).padStart(2, '0')).join('');
            done([hex, new TextDecoder().decode(bytes)]);
        });"#;
    let v = c
        .execute_async(script, vec![json!(path)])
        .await
        .expect("fetch");
    (
        v[0].as_str().unwrap_or_default().to_owned(),
        v[1].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_real_browser() {
    let Some(driver_bin) = browser() else {
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    let mut demo = Demo::start_kept_running(root.path());
    let province_url = printed(&demo, "web console of 辽宁省:");
    let reader = printed(&demo, "log in as a reader:");
    let auditor = printed(&demo, "or as an auditor:");
    let village_line = printed(&demo, "web console of 玉皇庙社区 (entry):");
    let village_url = village_line
        .split_whitespace()
        .next()
        .expect("village console url")
        .to_owned();
    let village_dir = demo.dir.join(common::demo::VILLAGE);
    let operator = std::fs::read_to_string(village_dir.join("operator.token"))
        .expect("operator token")
        .trim()
        .to_owned();
    let driver = start_driver(&driver_bin);

    // A reader at the province, on a desktop screen.
    let c = open_browser(&driver, &root.path().join("profile-reader"), 1366, 900).await;
    login(&c, &province_url, &reader).await;
    assert!(text(&c, "nav.crumbs").await.contains("辽宁省"));
    screenshot(&c, "figures-province").await;
    let period = c
        .find(Locator::Id("period"))
        .await
        .expect("period")
        .prop("value")
        .await
        .expect("value")
        .expect("a period");

    // Drill down, one click per level, to the village.
    for name in ["大连市", "普兰店区", "铁西街道", "玉皇庙社区"] {
        c.wait()
            .at_most(WAIT)
            .for_element(Locator::LinkText(name))
            .await
            .unwrap_or_else(|e| panic!("no row {name}: {e}"))
            .click()
            .await
            .expect("drill down");
        c.wait()
            .at_most(WAIT)
            .for_element(Locator::XPath(&format!(
                "//nav[contains(@class,'crumbs')]//span[@class='here' and text()='{name}']"
            )))
            .await
            .unwrap_or_else(|e| panic!("breadcrumb at {name}: {e}"));
    }
    let crumbs = text(&c, "nav.crumbs").await;
    assert_eq!(crumbs, "辽宁省 › 大连市 › 普兰店区 › 铁西街道 › 玉皇庙社区");
    assert!(
        c.current_url()
            .await
            .expect("url")
            .path()
            .ends_with(common::demo::VILLAGE)
    );
    screenshot(&c, "figures-village").await;

    // The village's registered cases this month, against the gRPC query.
    let shown: u64 = cell(&c, "trend", &period, 1)
        .await
        .parse()
        .expect("a count");
    let config = demo.dir.join("210000000000").join("node.toml");
    let out = tallytree()
        .arg("--config")
        .arg(&config)
        .args([
            "query",
            "--region",
            common::demo::VILLAGE,
            "--period",
            &period,
            "--json",
        ])
        .output()
        .expect("tallytree query");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let queried = &json["rows"][0]["months"][0]["total"]["case_totals"]["registered"];
    assert_eq!(
        queried.as_u64(),
        Some(shown),
        "the console shows {shown} registered for {period}; the query says {json}"
    );

    // Who has not reported: the silent village, first, at its street.
    c.goto(&format!(
        "{province_url}completeness/210214001000?period={period}"
    ))
    .await
    .expect("completeness");
    let first = text(&c, "table#reports tbody tr:first-child").await;
    assert!(
        first.contains("后石村") && first.contains("未报"),
        "{first}"
    );
    screenshot(&c, "completeness").await;

    // What needs checking: the demo's flat line, reached from the
    // navigation, then narrowed to its rule; its CSV carries it too.
    c.find(Locator::LinkText("需核实"))
        .await
        .expect("findings in the navigation")
        .click()
        .await
        .expect("open findings");
    let row = text(&c, "table#findings tbody tr:first-child").await;
    assert!(
        row.contains("玉皇庙社区") && row.contains("连续多月数据不变"),
        "{row}"
    );
    screenshot(&c, "findings").await;
    c.goto(&format!(
        "{province_url}findings/210000000000?rule=siblings.identical"
    ))
    .await
    .expect("findings of one rule");
    assert!(text(&c, "#no-findings").await.contains("没有需核实的数据"));
    let (_, csv) = fetch(
        &c,
        "/findings/210000000000/findings.csv?rule=history.flatline",
    )
    .await;
    assert!(
        csv.contains("玉皇庙社区") && csv.contains("连续多月数据不变"),
        "{csv}"
    );

    // CSV export as the browser downloads it: with the BOM for Excel.
    let (head, body) = fetch(
        &c,
        &format!("/figures/210214001000/units.csv?period={period}&bom=1"),
    )
    .await;
    assert_eq!(head, "efbbbf", "a UTF-8 BOM first");
    assert!(body.contains("玉皇庙社区"), "{body}");
    let (head, _) = fetch(
        &c,
        &format!("/figures/210214001000/units.csv?period={period}"),
    )
    .await;
    assert_ne!(head, "efbbbf");

    // The printed monthly report carries the unit's name and the digest.
    c.goto(&format!(
        "{province_url}figures/210214000000?period={period}&print=1"
    ))
    .await
    .expect("print view");
    text(&c, ".report-head").await;
    screenshot(&c, "print-report").await;
    let pdf = c
        .print(fantoccini::wd::PrintConfiguration::default())
        .await
        .expect("print to PDF");
    let pdf_file = root.path().join("report.pdf");
    std::fs::write(&pdf_file, pdf).expect("pdf written");
    let pdf_text = Command::new("pdftotext")
        .arg(&pdf_file)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils)");
    let pdf_text = String::from_utf8_lossy(&pdf_text.stdout);
    assert!(pdf_text.contains("普兰店区"), "{pdf_text}");
    assert!(pdf_text.contains("月报"), "{pdf_text}");

    // English, and back.
    c.goto(&format!(
        "{province_url}figures/210214000000?period={period}"
    ))
    .await
    .expect("figures");
    c.find(Locator::Css("a.lang"))
        .await
        .expect("toggle")
        .click()
        .await
        .expect("English");
    assert!(text(&c, "section.kpis").await.contains("Resolution"));
    screenshot(&c, "figures-english").await;
    c.find(Locator::Css("a.lang"))
        .await
        .expect("toggle")
        .click()
        .await
        .expect("中文");
    assert!(text(&c, "section.kpis").await.contains("化解率"));

    // A reader may not enter cases.
    c.goto(&format!("{province_url}entry"))
        .await
        .expect("entry");
    assert!(text(&c, "p.error").await.contains("reader"));
    // The auditor downloads the village's inclusion proof and the street's
    // evidence bundle; the CLI verifies both offline with the province's
    // anchor only.
    c.goto(&province_url).await.expect("figures");
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("form.logout button"))
        .await
        .expect("logout")
        .click()
        .await
        .expect("log out");
    // The logout's own redirect must land before the next page is asked
    // for, or it replaces it.
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Id("token"))
        .await
        .expect("logged out");
    login(
        &c,
        &format!("{province_url}summary/{}/{period}", common::demo::VILLAGE),
        &auditor,
    )
    .await;
    assert!(text(&c, "p.downloads").await.contains("下载包含证明"));
    let config = demo.dir.join("210000000000").join("node.toml");
    let anchor = root.path().join("anchor.pub");
    let out = tallytree()
        .arg("--config")
        .arg(&config)
        .args(["keys", "export-anchor", "-o"])
        .arg(&anchor)
        .output()
        .expect("export-anchor");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (path, file, verb) in [
        (
            format!("/proof/{}/{period}", common::demo::VILLAGE),
            "village.proof",
            "verify-proof",
        ),
        (
            format!("/evidence/210214001000?period={period}"),
            "street.bundle",
            "verify",
        ),
    ] {
        let bytes = download(&c, &path).await;
        let saved = root.path().join(file);
        std::fs::write(&saved, bytes).expect("saved");
        let out = tallytree()
            .args(["audit", verb])
            .arg(&saved)
            .arg("--trust")
            .arg(&anchor)
            .output()
            .expect("audit");
        assert!(
            out.status.success(),
            "{path}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    c.close().await.expect("close");

    // The village's operator, on a phone.
    let p = open_browser(&driver, &root.path().join("profile-operator"), 390, 844).await;
    login(&p, &format!("{village_url}entry"), &operator).await;
    let month = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("offset"))
        .format("%Y-%m")
        .to_string();
    let before: u64 = cell(&p, "months", &month, 7).await.parse().unwrap_or(0);
    let registered = format!("{month}-01");
    fill_case(&p, "BROWSER-1", &registered, "in_progress", "").await;
    screenshot(&p, "entry-phone").await;
    p.find(Locator::Css("#case-form button"))
        .await
        .expect("save")
        .click()
        .await
        .expect("save");
    assert!(text(&p, "p.notice").await.contains("已保存"));
    // The signer signs a new revision of the month within seconds.
    let deadline = Instant::now() + WAIT;
    loop {
        p.goto(&format!("{village_url}entry")).await.expect("entry");
        let rev: u64 = cell(&p, "months", &month, 7).await.parse().unwrap_or(0);
        let status = cell(&p, "months", &month, 9).await;
        if rev > before && status == "已签名" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new revision after {before} ({status})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The same case, refused when it moves backwards, with the rule.
    fill_case(&p, "BROWSER-1", &registered, "resolved", "2000-01-01").await;
    p.find(Locator::Css("#case-form button"))
        .await
        .expect("save")
        .click()
        .await
        .expect("save");
    let refused = text(&p, "p.notice").await;
    assert!(refused.contains("closed_on"), "{refused}");

    // An upload with a bad row: previewed, the bad row named by its line.
    let csv = root.path().join("cases.csv");
    std::fs::write(
        &csv,
        format!("编号,类别,登记日期,状态,办结日期\nUP-1,邻里,{month}-01,在办,\nUP-2,traffic,{month}-01,在办,\nUP-3,物业,{month}-01,已化解,2000-01-01\n"),
    )
    .expect("csv");
    p.goto(&format!("{village_url}upload"))
        .await
        .expect("upload");
    p.find(Locator::Css("#upload-form input[type=file]"))
        .await
        .expect("file input")
        .send_keys(&csv.display().to_string())
        .await
        .expect("choose the file");
    p.find(Locator::Css("#upload-form button"))
        .await
        .expect("preview")
        .click()
        .await
        .expect("preview");
    let line3 = cell(&p, "preview", "3", 2).await;
    assert!(line3.contains("category (traffic)"), "{line3}");
    let line4 = cell(&p, "preview", "4", 2).await;
    assert!(line4.contains("closed_on"), "{line4}");
    let line2 = cell(&p, "preview", "2", 2).await;
    assert!(line2.contains("将保存"), "{line2}");
    screenshot(&p, "upload-preview").await;
    p.find(Locator::Css("#confirm-form button"))
        .await
        .expect("confirm")
        .click()
        .await
        .expect("confirm");
    assert!(text(&p, "#upload-result").await.contains("未保存任何行"));
    p.close().await.expect("close");

    drop(driver);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(demo.child.id().to_string())
        .status();
    assert_eq!(demo.wait_exit(), Some(0), "{}", demo.show());
}
