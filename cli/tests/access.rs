//! Who may reach a node and what they may do, from the command line, as a
//! new unit's operator and its users meet it: `tallytree init`, the node
//! started, then `token add/list/revoke` at the running node; a reader's
//! token reads and is refused for intake (exit 1, the role named); a
//! revoked token is refused at its next call with no restart; `token list`
//! shows names and hashes, never a token; a client in another directory
//! with `--node https://... --ca-file ca.pem --token T` (flags or
//! environment); and another unit's `ca.pem` refused, clearly.

mod common;

use std::{path::Path, process::Output};

use common::{Unit, show, tallytree};
use serde_json::Value;

/// The unit of these tests.
const CODE: &str = "210214000000";
/// Its Chinese name.
const NAME: &str = "普兰店区";
/// The reader's credential name.
const READER: &str = "省厅统计科";

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Expects exit code `code`; returns stdout.
fn expect_exit(out: &Output, code: i32, what: &str) -> String {
    assert_eq!(out.status.code(), Some(code), "{what}: {}", show(out));
    stdout(out)
}

/// A case to record, by id.
fn case(id: &str) -> Vec<String> {
    [
        "record",
        "case",
        "--id",
        id,
        "--category",
        "邻里",
        "--registered",
        "2026-03-02",
        "--state",
        "in_progress",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Cases registered in 2026-03 as `query --json` shows them to `token`.
fn registered_in_march(unit: &Unit, token: &str) -> Value {
    let out = unit.run_as(token, ["query", "--period", "2026-03", "--json"]);
    let text = expect_exit(&out, 0, "query");
    let json: Value = serde_json::from_str(&text).expect("query --json prints JSON");
    json["rows"][0]["total"]["case_totals"]["registered"].clone()
}

/// Lowercase hex SHA-256.
fn sha256_hex(text: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn tokens_are_added_listed_and_revoked_at_a_running_node() {
    let mut unit = Unit::init_and_start(CODE, NAME);
    let operator = unit.operator_token();
    let pid = unit.pid();

    // A reader's credential: its token is printed once, on stdout alone.
    let out = unit.run(["token", "add", "--role", "reader", "--name", READER]);
    let reader = expect_exit(&out, 0, "token add").trim().to_owned();
    assert!(reader.starts_with("tt_") && reader.len() > 40, "{reader}");
    assert!(
        stderr(&out).contains(&format!("added reader credential {READER}"))
            && stderr(&out).contains("shown once"),
        "{}",
        show(&out)
    );
    let auditor = unit.add_token("auditor", "审计处");

    // token list: every credential by name and role, never a token.
    let out = unit.run(["token", "list"]);
    let table = expect_exit(&out, 0, "token list");
    for (name, role) in [
        ("operator", "operator"),
        (READER, "reader"),
        ("审计处", "auditor"),
    ] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(name) && l.split_whitespace().nth(1) == Some(role)),
            "no {name} ({role}):\n{table}"
        );
    }
    let out_json = unit.run(["token", "list", "--json"]);
    let json = expect_exit(&out_json, 0, "token list --json");
    for (printed, what) in [(&out, "token list"), (&out_json, "token list --json")] {
        let all = format!("{}{}", stdout(printed), stderr(printed));
        for token in [&operator, &reader, &auditor] {
            assert!(!all.contains(&token[3..]), "{what} shows a token:\n{all}");
        }
    }
    let list: Value = serde_json::from_str(&json).expect("JSON");
    let list = list.as_array().expect("a list");
    assert_eq!(list.len(), 3, "{json}");
    for (name, role, token) in [
        ("operator", "operator", &operator),
        (READER, "reader", &reader),
        ("审计处", "auditor", &auditor),
    ] {
        let c = list
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {json}"));
        assert_eq!(c["role"], role, "{json}");
        // What is kept is the token's hash.
        assert_eq!(c["token_sha256"], sha256_hex(token), "{json}");
    }
    let file = std::fs::read_to_string(unit.path("credentials.toml")).expect("credentials");
    for token in [&operator, &reader, &auditor] {
        assert!(!file.contains(&token[3..]), "{file}");
    }

    // The node, running since before the credentials were made, takes
    // them: the reader reads.
    assert_eq!(registered_in_march(&unit, &reader), 0);
    // The operator records; the reader is refused for intake, exit 1, the
    // credential and its role named, and nothing is stored.
    let out = unit.run_as(&operator, case("A-1"));
    expect_exit(&out, 0, "record as the operator");
    let says = format!(
        "refused: authorization: credential {READER} has the reader role; this call needs an operator credential"
    );
    let out = unit.run_as(&reader, case("A-2"));
    expect_exit(&out, 1, "record as a reader");
    assert!(stderr(&out).contains(&says), "{}", show(&out));
    let csv = common::repo().join("samples/cases.csv");
    let out = unit.run_as(
        &reader,
        ["import".as_ref(), "cases".as_ref(), csv.as_os_str()],
    );
    expect_exit(&out, 1, "import as a reader");
    assert!(stderr(&out).contains(&says), "{}", show(&out));
    // Nor may a reader enrol a child (the street's public file, as its own
    // init wrote it).
    let street = Unit::init("210214001000", "城子坦街道", &[]);
    let enrolment = street.path("enrolment.json");
    let out = unit.run_as(
        &reader,
        [
            "enrol".as_ref(),
            "--code".as_ref(),
            "210214001000".as_ref(),
            "--name".as_ref(),
            "城子坦街道".as_ref(),
            "--key".as_ref(),
            street.path("node.pub").as_os_str(),
            "-o".as_ref(),
            enrolment.as_os_str(),
        ],
    );
    expect_exit(&out, 1, "enrol as a reader");
    assert!(stderr(&out).contains(&says), "{}", show(&out));
    assert!(!enrolment.exists());
    let wait = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while registered_in_march(&unit, &reader) != 1 {
        assert!(std::time::Instant::now() < wait, "A-1 never signed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // Evidence is for auditors: the auditor lists revisions, the reader
    // and the operator are told what the call needs.
    let out = unit.run_as(&auditor, ["audit", "revisions", "--period", "2026-03"]);
    let text = expect_exit(&out, 0, "audit revisions as the auditor");
    assert!(
        text.contains(&format!("{CODE} {NAME} 2026-03 revision")),
        "{text}"
    );
    for (token, name) in [(&reader, READER), (&operator, "operator")] {
        let out = unit.run_as(token, ["audit", "revisions", "--period", "2026-03"]);
        expect_exit(&out, 1, "audit revisions without an auditor credential");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("authorization: credential {name} has the"))
                && err.contains("this call needs an auditor credential"),
            "{}",
            show(&out)
        );
    }

    // Revoked: refused at the very next call, the node not restarted.
    let out = unit.run(["token", "revoke", "--name", READER]);
    let text = expect_exit(&out, 0, "token revoke");
    assert!(
        text.contains(&format!("revoked credential {READER}")),
        "{text}"
    );
    let out = unit.run_as(&reader, ["query", "--period", "2026-03"]);
    expect_exit(&out, 2, "query with a revoked token");
    assert!(
        stderr(&out).contains("authorization: unknown or revoked credential")
            && stderr(&out).contains("tallytree token add"),
        "{}",
        show(&out)
    );
    assert!(unit.running(), "the node stopped:\n{}", unit.log());
    assert_eq!(unit.pid(), pid);
    // The others keep working.
    assert_eq!(registered_in_march(&unit, &auditor), 1);
    assert_eq!(registered_in_march(&unit, &operator), 1);
    let out = unit.run(["token", "list", "--json"]);
    let list: Value = serde_json::from_str(&expect_exit(&out, 0, "token list")).expect("JSON");
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["operator", "审计处"]);

    // Mistakes are named: a second revocation, a name in use, a role that
    // is none.
    let out = unit.run(["token", "revoke", "--name", READER]);
    expect_exit(&out, 2, "revoking again");
    assert!(
        stderr(&out).contains("no such credential"),
        "{}",
        show(&out)
    );
    let out = unit.run(["token", "add", "--role", "reader", "--name", "审计处"]);
    expect_exit(&out, 2, "a name in use");
    assert!(stderr(&out).contains("exists already"), "{}", show(&out));
    assert!(stdout(&out).is_empty(), "{}", show(&out));
    let out = unit.run(["token", "add", "--role", "admin", "--name", "x"]);
    expect_exit(&out, 2, "no such role");
    assert!(
        stderr(&out).contains("not a role (operator, reader or auditor)"),
        "{}",
        show(&out)
    );
    // The same name again after its revocation is a new credential: the
    // old token stays refused.
    let again = unit.add_token("reader", READER);
    assert_ne!(again, reader);
    assert_eq!(registered_in_march(&unit, &again), 1);
    let out = unit.run_as(&reader, ["query", "--period", "2026-03"]);
    expect_exit(&out, 2, "the revoked token after a new one of its name");
    unit.stop();
}

/// Runs `tallytree ARGS...` in `dir`.
fn run_in<I, S>(dir: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    tallytree()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("tallytree runs")
}

#[test]
fn a_client_elsewhere_reaches_the_node_by_its_url_and_ca_file() {
    let unit = Unit::init_and_start(CODE, NAME);
    let operator = unit.operator_token();
    let reader = unit.add_token("reader", READER);

    // What the operator gives a client: ca.pem and a token. The client
    // keeps them in a directory of its own, far from the unit's files.
    let client = tempfile::tempdir().expect("tempdir");
    std::fs::copy(unit.path("ca.pem"), client.path().join("ca.pem")).expect("copy ca.pem");
    let url = unit.url();
    let out = run_in(
        client.path(),
        ["--node", &url, "--ca-file", "ca.pem", "--token", &operator]
            .into_iter()
            .chain(case("B-1").iter().map(String::as_str)),
    );
    let text = expect_exit(&out, 0, "record from elsewhere");
    assert!(text.contains("months changed: 2026-03"), "{text}");

    // From the environment instead of flags, by the name localhost (which
    // the server certificate names too).
    let localhost = format!("https://localhost:{}", unit.addr().port());
    let wait = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = tallytree()
            .current_dir(client.path())
            .env("TALLYTREE_NODE", &localhost)
            .env("TALLYTREE_CA_FILE", "ca.pem")
            .env("TALLYTREE_TOKEN", &reader)
            .args(["query", "--period", "2026-03", "--json"])
            .output()
            .expect("runs");
        let json: Value = serde_json::from_str(&expect_exit(&out, 0, "query from the environment"))
            .expect("JSON");
        let row = &json["rows"][0];
        assert_eq!(row["region"], CODE, "{json:#}");
        if row["total"]["case_totals"]["registered"] == 1 && row["pending"] == false {
            assert_eq!(row["verified"], true, "{json:#}");
            break;
        }
        assert!(std::time::Instant::now() < wait, "B-1 not signed: {json:#}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // Without --ca-file an https node cannot be checked: said so, exit 2.
    let out = run_in(
        client.path(),
        [
            "--node", &url, "--token", &reader, "query", "--period", "2026-03",
        ],
    );
    expect_exit(&out, 2, "no --ca-file");
    assert!(
        stderr(&out).contains("--ca-file: required for https://"),
        "{}",
        show(&out)
    );
    // A CA file that is not there is named.
    let out = run_in(
        client.path(),
        [
            "--node",
            &url,
            "--ca-file",
            "missing.pem",
            "--token",
            &reader,
        ]
        .into_iter()
        .chain(["query", "--period", "2026-03"]),
    );
    expect_exit(&out, 2, "a missing --ca-file");
    assert!(
        stderr(&out).contains("--ca-file missing.pem: cannot read"),
        "{}",
        show(&out)
    );
    // Without a token: what the call needs, and how to get it.
    let out = run_in(
        client.path(),
        [
            "--node",
            &url,
            "--ca-file",
            "ca.pem",
            "query",
            "--period",
            "2026-03",
        ],
    );
    expect_exit(&out, 2, "no token");
    assert!(
        stderr(&out).contains("a reader, auditor or operator credential required")
            && stderr(&out).contains("--token"),
        "{}",
        show(&out)
    );
    unit.stop();
}

#[test]
fn another_units_ca_file_is_refused_clearly() {
    let unit = Unit::init_and_start(CODE, NAME);
    let operator = unit.operator_token();
    // Another unit, made the same way (its node not running): its CA did
    // not issue this node's certificate.
    let other = Unit::init("210200000000", "大连市", &[]);
    let url = unit.url();
    for args in [
        case("C-1"),
        ["query", "--period", "2026-03"].map(str::to_owned).to_vec(),
    ] {
        let out = tallytree()
            .args(["--node", &url, "--token", &operator, "--ca-file"])
            .arg(other.path("ca.pem"))
            .args(&args)
            .output()
            .expect("runs");
        expect_exit(&out, 2, "another unit's ca.pem");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("cannot reach the node at {url}"))
                && err.contains("invalid peer certificate")
                && err.contains("UnknownIssuer"),
            "{args:?}: {}",
            show(&out)
        );
    }
    // Nothing reached the node: C-1 is not there.
    let out = unit.run(["query", "--period", "2026-03", "--json"]);
    let json: Value = serde_json::from_str(&expect_exit(&out, 0, "query")).expect("JSON");
    assert_eq!(json["rows"][0]["pending"], false, "{json:#}");
    assert_eq!(
        json["rows"][0]["total"]["case_totals"]["registered"], 0,
        "{json:#}"
    );
    unit.stop();
}

#[test]
fn a_plaintext_client_of_a_tls_node_is_told_to_use_https() {
    let unit = Unit::init_and_start("210214000000", "普兰店区");
    let token = unit.operator_token();
    let out = tallytree()
        .args([
            "--node",
            &format!("http://{}", unit.addr()),
            "--token",
            &token,
            "query",
            "--period",
            "2026-03",
        ])
        .output()
        .expect("tallytree runs");
    expect_exit(&out, 2, "query over plaintext");
    let err = stderr(&out);
    assert!(
        err.contains("over plaintext") && err.contains("use --node https://... with --ca-file"),
        "{err}"
    );
    unit.stop();
}
