//! The `tallytree` command line against a real `tallytree-node` process:
//! the README's walk-through (init, import of the shipped sample CSVs, a
//! refused file, monthly table, JSON and CSV, keys, verified revisions),
//! checked against figures counted straight from the sample files.

mod common;

use common::{Unit, repo, show, tallytree};
use std::{
    collections::BTreeMap,
    path::Path,
    process::Output,
    time::{Duration, Instant},
};

use serde_json::Value;
use tallytree_proto::{
    PublicKey, SigningKey,
    envelope::{self, DsseJson},
};
use unicode_width::UnicodeWidthChar;

/// Longest any step waits (node start, signing, exit).
const WAIT: Duration = Duration::from_secs(30);
/// The unit of the walk-through.
const CODE: &str = "210214000000";
/// Its Chinese name.
const NAME: &str = "普兰店区";
/// Payload type of signed summaries.
const SUMMARY_TYPE: &str = "application/vnd.tallytree.summary.v1+protobuf";

/// Runs `tallytree --config CONFIG ARGS...`.
fn run(config: &Path, args: &[&str]) -> Output {
    tallytree()
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("tallytree runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

/// Runs and expects success; returns stdout.
fn ok(config: &Path, args: &[&str]) -> String {
    let out = run(config, args);
    assert!(out.status.success(), "tallytree {args:?}: {}", show(&out));
    stdout(&out)
}

/// `tallytree init` of the walk-through's unit in a fresh directory, its
/// files checked, then its node started.
fn init_and_start() -> Unit {
    let mut unit = Unit::init(CODE, NAME, &["--operator-name", "值班员"]);
    let printed = &unit.init_stdout;
    assert!(
        printed.contains(&format!("initialised {CODE}")),
        "{printed}"
    );
    for file in [
        "node.key",
        "node.pub",
        "node.toml",
        "tls.key",
        "ca.key",
        "ca.pem",
        "credentials.toml",
        "operator.token",
    ] {
        assert!(unit.path(file).is_file(), "{file} not written");
    }
    // The operator's token is printed once and kept in operator.token;
    // the credentials file holds its hash only.
    let token = unit.operator_token();
    assert!(
        printed.contains("operator token (值班员)") && printed.contains(&token),
        "{printed}"
    );
    let credentials = std::fs::read_to_string(unit.path("credentials.toml")).expect("read");
    assert!(!credentials.contains(&token[3..]), "{credentials}");
    assert!(credentials.contains("值班员"), "{credentials}");
    let public = std::fs::read_to_string(unit.path("node.pub")).expect("node.pub");
    assert!(
        public.contains("BEGIN PUBLIC KEY") && public.contains("BEGIN CERTIFICATE REQUEST"),
        "{public}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in [
            "node.key",
            "node.toml",
            "tls.key",
            "ca.key",
            "operator.token",
            "credentials.toml",
        ] {
            let mode = std::fs::metadata(unit.path(file))
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file} must be private");
        }
    }
    unit.start();
    unit
}

/// `query --period PERIOD --json` at `config`, parsed.
fn query_json(config: &Path, period: &str) -> Value {
    let text = ok(config, &["query", "--period", period, "--json"]);
    serde_json::from_str(&text).expect("query --json prints JSON")
}

/// Polls until the unit's row for `period` has `months` signed months
/// and nothing pending.
fn wait_signed(config: &Path, period: &str, months: usize) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let json = query_json(config, period);
        let row = &json["rows"][0];
        if row["pending"] == false && row["months"].as_array().map(Vec::len) == Some(months) {
            return json;
        }
        assert!(Instant::now() < deadline, "not signed in time: {json:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first PEM block labelled `label` in `text`, markers included.
fn pem_block<'a>(text: &'a str, label: &str) -> &'a str {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .unwrap_or_else(|| panic!("no {begin} in {text}"));
    let stop = text[start..]
        .find(&end)
        .unwrap_or_else(|| panic!("no {end} in {text}"));
    &text[start..start + stop + end.len()]
}

/// What the sample files hold, counted here independently of the CLI.
#[derive(Debug, Default)]
struct SampleCounts {
    /// Cases per Chinese category label.
    by_label: BTreeMap<String, u64>,
    /// Cases per registration month.
    by_month: BTreeMap<String, u64>,
    cases: u64,
    resolved: u64,
    escalated: u64,
    in_progress: u64,
    tasks: u64,
    tasks_completed: u64,
}

fn sample_counts() -> SampleCounts {
    let mut counts = SampleCounts::default();
    let mut cases = csv::Reader::from_path(repo().join("samples/cases.csv")).expect("cases.csv");
    for record in cases.records() {
        let record = record.expect("row");
        counts.cases += 1;
        *counts.by_label.entry(record[1].to_owned()).or_default() += 1;
        *counts
            .by_month
            .entry(record[2][..7].to_owned())
            .or_default() += 1;
        match &record[3] {
            "已化解" => counts.resolved += 1,
            "已上交" => counts.escalated += 1,
            "在办" => counts.in_progress += 1,
            other => panic!("unexpected state {other} in samples/cases.csv"),
        }
    }
    let mut tasks = csv::Reader::from_path(repo().join("samples/tasks.csv")).expect("tasks.csv");
    for record in tasks.records() {
        let record = record.expect("row");
        counts.tasks += 1;
        if &record[3] == "已完成" {
            counts.tasks_completed += 1;
        }
    }
    counts
}

/// A rate as the CLI prints it.
fn percent(num: u64, den: u64) -> String {
    format!("{:.2}%", num as f64 / den as f64 * 100.0)
}

/// Display column where each whitespace-separated token of `line` ends.
fn token_ends(line: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut col = 0;
    let mut in_token = false;
    for ch in line.chars() {
        if ch == ' ' {
            if in_token {
                ends.push(col);
            }
            in_token = false;
        } else {
            in_token = true;
        }
        col += ch.width().unwrap_or(0);
    }
    if in_token {
        ends.push(col);
    }
    ends
}

#[test]
fn the_walkthrough_imports_queries_and_verifies() {
    let unit = init_and_start();
    let config = unit.config.clone();
    let samples = sample_counts();
    assert!(
        samples.cases > 600 && samples.by_month.len() >= 6,
        "{samples:?}"
    );

    // Import the shipped samples.
    let out = ok(&config, &["import", "cases", "samples/cases.csv"]);
    assert!(
        out.contains(&format!("{} cases accepted, 0 refused", samples.cases)),
        "{out}"
    );
    let out = ok(&config, &["import", "tasks", "samples/tasks.csv"]);
    assert!(
        out.contains(&format!("{} tasks accepted, 0 refused", samples.tasks)),
        "{out}"
    );
    let months = samples.by_month.len();
    let json = wait_signed(&config, "2026", months);

    // A file with bad rows: exit 1, every bad line named, nothing stored.
    let before = query_json(&config, "2026");
    let out = run(&config, &["import", "cases", "samples/bad-cases.csv"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = stdout(&out);
    assert!(
        text.contains("5 of 6 rows refused; nothing stored"),
        "{text}"
    );
    for (line, why) in [
        ("line 3 (id PLD-X-0002)", "category (交通)"),
        (
            "line 4 (id PLD-X-0003)",
            "registered_on (2026-02-30): not a date",
        ),
        (
            "line 5 (id PLD-X-0004)",
            "closed_on: required when state is resolved",
        ),
        (
            "line 6 (id PLD-X-0005)",
            "closed_on (2026-03-01): before registered_on (2026-03-08)",
        ),
        ("line 7 (id PLD-X-0001)", "duplicate in this batch"),
    ] {
        let found = text.lines().any(|l| l.contains(line) && l.contains(why));
        assert!(found, "no {line:?} with {why:?} in:\n{text}");
    }
    assert!(!text.contains("line 2 "), "line 2 is valid:\n{text}");
    assert_eq!(
        query_json(&config, "2026"),
        before,
        "the refused file changed figures"
    );

    // JSON: every count matches the files.
    let row = &json["rows"][0];
    assert_eq!(row["region"], CODE);
    assert_eq!(row["name"], NAME);
    assert_eq!(row["level"], "district");
    assert_eq!(row["verified"], true);
    let totals = &row["total"]["case_totals"];
    assert_eq!(totals["registered"], samples.cases);
    assert_eq!(totals["resolved"], samples.resolved);
    assert_eq!(totals["escalated"], samples.escalated);
    assert_eq!(totals["in_progress"], samples.in_progress);
    assert_eq!(row["total"]["tasks"]["assigned"], samples.tasks);
    assert_eq!(row["total"]["tasks"]["completed"], samples.tasks_completed);
    let by_label: BTreeMap<String, u64> = row["total"]["cases"]
        .as_object()
        .expect("categories")
        .values()
        .filter(|c| c["counts"]["registered"] != 0)
        .map(|c| {
            (
                c["label"].as_str().expect("label").to_owned(),
                c["counts"]["registered"].as_u64().expect("count"),
            )
        })
        .collect();
    assert_eq!(by_label, samples.by_label);
    let resolution = row["total"]["rates"]["resolution"].as_f64().expect("rate");
    assert!((resolution - samples.resolved as f64 / samples.cases as f64).abs() < 1e-12);
    let signed_months: Vec<&str> = row["months"]
        .as_array()
        .expect("months")
        .iter()
        .map(|m| m["period"].as_str().expect("period"))
        .collect();
    assert_eq!(signed_months, samples.by_month.keys().collect::<Vec<_>>());
    for m in row["months"].as_array().expect("months") {
        assert_eq!(m["verified"], true);
        assert_eq!(m["digest"].as_str().map(str::len), Some(64));
        let period = m["period"].as_str().expect("period");
        assert_eq!(
            m["total"]["case_totals"]["registered"], samples.by_month[period],
            "{period}"
        );
    }

    // The monthly table: Chinese headers, one row per month, rates to 2
    // decimals, figures aligned by display width.
    let table = ok(&config, &["query", "--period", "2026", "--by-month"]);
    assert!(
        table.contains(&format!("{NAME} ({CODE}, 区县) · 2026")),
        "{table}"
    );
    for header in [
        "月份",
        "登记",
        "化解",
        "上交",
        "在办",
        "化解率",
        "按期率",
        "上交率",
        "完成率",
    ] {
        assert!(table.contains(header), "no {header}:\n{table}");
    }
    let lines: Vec<&str> = table.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("月份"))
        .expect("header line");
    let body: Vec<&str> = lines[header + 2..]
        .iter()
        .copied()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(body.len(), months + 1, "{table}");
    for (line, month) in body.iter().zip(samples.by_month.keys()) {
        assert!(line.starts_with(month.as_str()), "{line}");
        assert!(line.ends_with('✓'), "{line}");
    }
    let total = body.last().expect("total line");
    assert!(total.starts_with("合计"), "{table}");
    let cells: Vec<&str> = total.split_whitespace().collect();
    assert_eq!(cells[1], samples.cases.to_string());
    assert_eq!(
        cells[6],
        percent(samples.resolved, samples.cases),
        "{total}"
    );
    assert_eq!(
        cells[8],
        percent(samples.escalated, samples.cases),
        "{total}"
    );
    assert_eq!(
        cells[12],
        percent(samples.tasks_completed, samples.tasks),
        "{total}"
    );
    for line in &body {
        for cell in line.split_whitespace().skip(1).take(12) {
            if cell.ends_with('%') {
                let digits = cell.trim_end_matches('%');
                assert_eq!(
                    digits.split_once('.').map(|(_, d)| d.len()),
                    Some(2),
                    "{cell}"
                );
            } else {
                assert!(
                    cell == "—" || cell.chars().all(|c| c.is_ascii_digit() || c == ','),
                    "{cell}"
                );
            }
        }
    }
    // Right-aligned figure columns end in the same display column on the
    // header and every row, Chinese or not.
    let head_ends = token_ends(lines[header]);
    for line in &body {
        let ends = token_ends(line);
        assert_eq!(ends[1..13], head_ends[1..13], "misaligned:\n{table}");
    }

    // The category table names every category in Chinese.
    let categories = ok(&config, &["query", "--period", "2026"]);
    for label in [
        "婚姻家庭",
        "邻里",
        "物业",
        "土地",
        "劳动/欠薪",
        "经济债务",
        "医疗",
        "其他",
        "合计",
        "治理任务",
    ] {
        assert!(categories.contains(label), "no {label}:\n{categories}");
    }

    // CSV: a header and one record per month plus the total.
    let text = ok(
        &config,
        &["query", "--period", "2026", "--by-month", "--csv"],
    );
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().expect("csv header").clone();
    assert_eq!(&headers[0], "月份");
    assert_eq!(&headers[1], "登记");
    let records: Vec<csv::StringRecord> = reader
        .records()
        .collect::<Result<_, _>>()
        .expect("csv records");
    assert_eq!(records.len(), months + 1);
    for (record, (month, n)) in records.iter().zip(&samples.by_month) {
        assert_eq!(
            (&record[0], &record[1]),
            (month.as_str(), n.to_string().as_str())
        );
    }
    let last = records.last().expect("total");
    assert_eq!(&last[0], "合计");
    assert_eq!(&last[1], samples.cases.to_string());
    assert_eq!(&last[6], percent(samples.resolved, samples.cases));

    // keys show: the unit and its public key.
    let key = SigningKey::load(&unit.path("node.key"))
        .expect("key")
        .public_key();
    let shown = ok(&config, &["keys", "show"]);
    assert!(
        shown.contains(&format!("unit:       {NAME} ({CODE})")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("key id:     {}", key.key_id())),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("public key: {}", key.to_base64())),
        "{shown}"
    );
    // node.pub holds the same public key, then the TLS key's request.
    let pem = std::fs::read_to_string(unit.path("node.pub")).expect("node.pub");
    assert!(
        shown.contains(pem_block(&pem, "PUBLIC KEY")),
        "{shown}\n{pem}"
    );
    assert_eq!(PublicKey::load(&unit.path("node.pub")).expect("pub"), key);

    // audit revisions, by an auditor the operator made a credential for:
    // every revision verified with node.pub.
    let auditor = unit.add_token("auditor", "审计处");
    let audit = |args: &[&str]| {
        let out = unit.run_as(&auditor, args);
        assert!(out.status.success(), "tallytree {args:?}: {}", show(&out));
        stdout(&out)
    };
    let pub_file = unit.path("node.pub");
    let pub_arg = pub_file.to_str().expect("utf-8 path");
    for month in samples.by_month.keys() {
        let text = audit(&["audit", "revisions", "--period", month, "--key", pub_arg]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(!lines.is_empty(), "{month}: no revisions");
        for line in &lines {
            assert!(
                line.starts_with(&format!("{CODE} {NAME} {month} revision")),
                "{line}"
            );
            assert!(line.ends_with("signature verified"), "{line}");
        }
    }
    // As DSSE JSON: any DSSE verifier holding node.pub can check them.
    let text = audit(&[
        "audit",
        "revisions",
        "--period",
        "2026-03",
        "--dsse-json",
        "--key",
        pub_arg,
    ]);
    let mut n = 0;
    for line in text.lines() {
        let env = DsseJson::parse(line)
            .expect("DSSE JSON")
            .to_envelope()
            .expect("envelope");
        envelope::verify(&env, SUMMARY_TYPE, &key).expect("verifies with node.pub");
        n += 1;
    }
    assert!(n >= 1, "{text}");

    // With someone else's key, verification fails loudly.
    let stranger = unit.dir.path().join("stranger.pub");
    let (other, _) = SigningKey::generate().expect("key");
    std::fs::write(&stranger, other.public_key().to_pem()).expect("write");
    let out = unit.run_as(
        &auditor,
        [
            "audit",
            "revisions",
            "--period",
            "2026-03",
            "--key",
            stranger.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(stdout(&out).contains("SIGNATURE INVALID"), "{}", show(&out));

    unit.stop();
}

#[test]
fn skip_invalid_and_dry_run_do_what_they_say() {
    let unit = init_and_start();
    let config = unit.config.clone();

    // Dry run of the bad file: every problem reported, exit 1, nothing stored.
    let out = run(
        &config,
        &["import", "cases", "samples/bad-cases.csv", "--dry-run"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        stdout(&out).contains("5 of 6 rows refused; nothing stored (dry run)"),
        "{}",
        show(&out)
    );

    // Dry run of a good file: passes, nothing stored.
    let out = ok(
        &config,
        &["import", "tasks", "samples/tasks.csv", "--dry-run"],
    );
    assert!(
        out.contains("pass every check (dry run, nothing stored)"),
        "{out}"
    );
    let json = query_json(&config, "2026");
    assert_eq!(json["rows"][0]["pending"], false, "{json:#}");
    assert_eq!(json["rows"][0]["months"], Value::Array(vec![]), "{json:#}");

    // Skipping: the one good row goes in, the bad ones are listed.
    let out = ok(
        &config,
        &["import", "cases", "samples/bad-cases.csv", "--skip-invalid"],
    );
    assert!(
        out.contains("1 cases accepted, 5 refused (skipped)"),
        "{out}"
    );
    assert!(out.contains("line 7 (id PLD-X-0001)"), "{out}");
    let json = wait_signed(&config, "2026-03", 1);
    assert_eq!(json["rows"][0]["total"]["case_totals"]["registered"], 1);
    assert_eq!(json["rows"][0]["total"]["case_totals"]["resolved"], 1);
    unit.stop();
}

/// A token that is no credential of the node: the call could not run
/// (exit 2), the message says so and how to get one, and nothing is
/// stored.
#[test]
fn a_wrong_token_is_refused_with_advice() {
    let unit = init_and_start();
    let config = unit.config.clone();
    let out = tallytree()
        .arg("--config")
        .arg(&unit.config)
        .args([
            "--token",
            "not-the-token",
            "import",
            "cases",
            "samples/cases.csv",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("authorization: unknown or revoked credential"),
        "{err}"
    );
    assert!(
        err.contains("--token") && err.contains("tallytree token add"),
        "{err}"
    );
    let json = query_json(&config, "2026");
    assert_eq!(json["rows"][0]["pending"], false, "{json:#}");
    assert_eq!(json["rows"][0]["months"], Value::Array(vec![]), "{json:#}");
    unit.stop();
}

/// A row the node refuses is a refusal (exit 1), as the README's exit codes
/// say, not a command that could not run (exit 2): for single entries as
/// for imports, and for an enrolment the node refuses. The node keeps
/// serving, and a failure to reach it is still exit 2.
#[test]
fn refused_entries_exit_1() {
    let unit = init_and_start();
    let config = unit.config.clone();
    let refused = |args: &[&str], says: &str| {
        let out = run(&config, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", show(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("refused") && err.contains(says),
            "{args:?}: {}",
            show(&out)
        );
    };
    // The node refuses: closed before registered; a tally that does not add up.
    refused(
        &[
            "record",
            "case",
            "--id",
            "R-1",
            "--category",
            "邻里",
            "--registered",
            "2026-03-02",
            "--state",
            "resolved",
            "--closed",
            "2026-03-01",
        ],
        "closed_on (2026-03-01): before registered_on (2026-03-02)",
    );
    refused(
        &[
            "record",
            "tally",
            "--period",
            "2026-03",
            "--category",
            "land",
            "--registered",
            "3",
            "--resolved",
            "5",
        ],
        "!= registered (3)",
    );
    // Words the CLI itself refuses, as import refuses them.
    refused(
        &[
            "record",
            "task",
            "--id",
            "T-1",
            "--title",
            "排查",
            "--deadline",
            "2026-03-20",
            "--state",
            "done",
        ],
        "--state (done)",
    );
    // An enrolment of a unit that is not a direct child: the public file
    // its own init wrote (its key and TLS certificate request).
    let city = Unit::init("210200000000", "大连市", &[]);
    let key = city.path("node.pub");
    let out_file = unit.path("child.enrolment");
    refused(
        &[
            "enrol",
            "--code",
            "210200000000",
            "--name",
            "大连市",
            "--key",
            key.to_str().expect("utf-8 path"),
            "-o",
            out_file.to_str().expect("utf-8 path"),
        ],
        "not a direct child of this node",
    );
    assert!(!out_file.exists());

    // The node still takes a good entry.
    let out = ok(
        &config,
        &[
            "record",
            "case",
            "--id",
            "R-2",
            "--category",
            "邻里",
            "--registered",
            "2026-03-02",
            "--state",
            "in_progress",
        ],
    );
    assert!(out.contains("months changed: 2026-03"), "{out}");
    // A node that cannot be reached (port 1 is privileged: nothing a test
    // starts listens there): could not run, exit 2.
    let out = tallytree()
        .args([
            "--node",
            "https://127.0.0.1:1",
            "--token",
            &unit.operator_token(),
        ])
        .arg("--ca-file")
        .arg(unit.path("ca.pem"))
        .args([
            "record",
            "case",
            "--id",
            "R-3",
            "--category",
            "邻里",
            "--registered",
            "2026-03-02",
            "--state",
            "in_progress",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("cannot reach the node at https://127.0.0.1:1"),
        "{}",
        show(&out)
    );
    unit.stop();
}
