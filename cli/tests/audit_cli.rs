//! Auditing from the command line against a real federation of three
//! `tallytree-node` processes (辽宁省 › 大连市 › 普兰店区), set up the way the
//! README tells an operator to: `init`, `enrol` at the parent,
//! `install-enrolment` at the child, `import` at the district; every node
//! serves TLS by its unit's CA, each child pushes with the client
//! certificate its enrolment gave it. Once the province holds the
//! district's figures: `keys export-anchor`, then, with the auditor
//! credential the province's operator made (`token add --role auditor`),
//! `audit export` and `audit verify` (exit 0, 1 on a wrong anchor, 2 on a
//! damaged file), `audit prove` and `audit verify-proof`, and `audit export --format
//! dsse-json` checked with a DSSE verifier written here from the protocol
//! (PAE by hand, ring's Ed25519), independent of tallytree's envelope code.

mod common;

use common::{node_binary, repo, show, tallytree, wait_address};
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tallytree_proto::SigningKey;

/// Longest any step waits (node start, figures reaching the province).
const WAIT: Duration = Duration::from_secs(60);
/// The units, top-down: code, name, directory name.
const UNITS: [(&str, &str, &str); 3] = [
    ("210000000000", "辽宁省", "province"),
    ("210200000000", "大连市", "city"),
    ("210214000000", "普兰店区", "district"),
];
/// The district, where the cases are recorded.
const DISTRICT: &str = "210214000000";
/// The months of the sample file.
const RANGE: &str = "2026-01..2026-10";

/// Runs `tallytree ARGS...` (paths given as arguments).
fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    tallytree().args(args).output().expect("tallytree runs")
}

/// Expects exit code `code`; returns stdout.
fn expect_exit(out: Output, code: i32, what: &str) -> String {
    assert_eq!(out.status.code(), Some(code), "{what}: {}", show(&out));
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Three initialised units with their nodes running; the nodes are killed
/// when this is dropped, whether the test passed or not.
struct Federation {
    /// Holds every unit's files and the logs.
    dir: tempfile::TempDir,
    /// Each unit's node.toml, top-down.
    configs: Vec<PathBuf>,
    /// The token of the auditor credential the province's operator made.
    auditor: String,
    /// The node processes, top-down.
    nodes: Vec<Child>,
}

impl Drop for Federation {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
    }
}

/// Every node's log in `dir`, for failure messages.
fn logs_in(dir: &Path) -> String {
    UNITS
        .iter()
        .map(|(_, _, short)| {
            let log = std::fs::read_to_string(dir.join(format!("{short}.log"))).unwrap_or_default();
            format!("--- {short}.log\n{log}")
        })
        .collect()
}

impl Federation {
    /// `tallytree init` for each unit and starts its node, top-down: each
    /// node binds a port of its own (`--listen 127.0.0.1:0`) and each child
    /// names the address its parent reported. Then enrols each child at its
    /// parent.
    fn start() -> Federation {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut fed = Federation {
            dir,
            configs: Vec::new(),
            auditor: String::new(),
            nodes: Vec::new(),
        };
        let mut parent: Option<String> = None;
        for (code, name, short) in UNITS {
            let unit_dir = fed.dir.path().join(short);
            let mut init = tallytree();
            init.args(["init", "--code", code, "--name", name, "--dir"])
                .arg(&unit_dir)
                .args(["--listen", "127.0.0.1:0"]);
            if let Some(url) = &parent {
                init.args(["--parent", url]);
            }
            expect_exit(init.output().expect("init runs"), 0, "init");
            let config = unit_dir.join("node.toml");
            let log = std::fs::File::create(fed.dir.path().join(format!("{short}.log")))
                .expect("log file");
            let node = Command::new(node_binary())
                .arg("--config")
                .arg(&config)
                .env_remove("TALLYTREE_LOG")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("tallytree-node starts");
            fed.configs.push(config);
            fed.nodes.push(node);
            let i = fed.nodes.len() - 1;
            let dir = fed.dir.path().to_owned();
            let addr = wait_address(&mut fed.nodes[i], &fed.configs[i], WAIT, || logs_in(&dir));
            parent = Some(format!("https://{addr}"));
        }
        for (i, (code, name, short)) in UNITS.iter().enumerate().skip(1) {
            let file = fed.dir.path().join(format!("{short}.enrolment"));
            let key = fed.configs[i].with_file_name("node.pub");
            let out = tallytree()
                .arg("--config")
                .arg(&fed.configs[i - 1])
                .args(["enrol", "--code", code, "--name", name, "--key"])
                .arg(&key)
                .arg("-o")
                .arg(&file)
                .output()
                .expect("enrol runs");
            expect_exit(out, 0, "enrol");
            let out = tallytree()
                .arg("--config")
                .arg(&fed.configs[i])
                .arg("install-enrolment")
                .arg(&file)
                .output()
                .expect("install-enrolment runs");
            expect_exit(out, 0, "install-enrolment");
        }
        // Evidence is for auditors: the province's operator makes them a
        // credential.
        let out = tallytree()
            .arg("--config")
            .arg(&fed.configs[0])
            .args(["token", "add", "--role", "auditor", "--name", "省审计厅"])
            .output()
            .expect("token add runs");
        fed.auditor = expect_exit(out, 0, "token add").trim().to_owned();
        fed
    }

    /// Every node's log, for failure messages.
    fn logs(&self) -> String {
        logs_in(self.dir.path())
    }

    /// The province's config.
    fn province(&self) -> &Path {
        &self.configs[0]
    }

    /// `tallytree --config UNIT ARGS...`.
    fn at<I, S>(&self, unit: usize, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        tallytree()
            .arg("--config")
            .arg(&self.configs[unit])
            .args(args)
            .output()
            .expect("tallytree runs")
    }

    /// `tallytree --config UNIT --token AUDITOR ARGS...`: the auditor at
    /// the unit's node, its address and CA from the config.
    fn audit_at<I, S>(&self, unit: usize, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        tallytree()
            .arg("--config")
            .arg(&self.configs[unit])
            .args(["--token", &self.auditor])
            .args(args)
            .output()
            .expect("tallytree runs")
    }

    /// A path in the test directory.
    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Polls the province until it has signed every month of the range with
    /// `cases` cases registered in all, the district's figures included.
    fn wait_for_province(&self, cases: u64) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let out = self.at(0, ["query", "--period", RANGE, "--depth", "2", "--json"]);
            if out.status.success() {
                let json: Value = serde_json::from_slice(&out.stdout).expect("query --json");
                let rows = json["rows"].as_array().cloned().unwrap_or_default();
                let done = rows.len() == 3
                    && rows.iter().all(|row| {
                        row["total"]["case_totals"]["registered"] == cases
                            && row["months"].as_array().map(Vec::len) == Some(10)
                            && row["pending"] == false
                    });
                if done {
                    return json;
                }
                assert!(
                    Instant::now() < deadline,
                    "the province did not get the district's figures: {json:#}\n{}",
                    self.logs()
                );
            } else {
                assert!(
                    Instant::now() < deadline,
                    "query fails: {}\n{}",
                    show(&out),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Cases in the sample file.
fn sample_cases() -> u64 {
    let text = std::fs::read_to_string(repo().join("samples/cases.csv")).expect("cases.csv");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count() as u64
}

/// Standard base64 (RFC 4648, padded), decoded here so the DSSE check
/// shares nothing with tallytree.
fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\n' | b'\r' => continue,
            _ => panic!("not base64: {text:?}"),
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The raw Ed25519 key of a SubjectPublicKeyInfo PEM: the last 32 bytes of
/// the 44-byte DER (RFC 8410).
fn raw_key_of_pem(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.starts_with('#'))
        .collect();
    let der = base64_decode(&body);
    assert_eq!(der.len(), 44, "not an Ed25519 SPKI: {pem}");
    der[12..].to_vec()
}

/// `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `src` with its (unsigned) header claiming `region` and `period`, written
/// again with a valid trailer: what an export relabelled after the fact is.
fn relabel(src: &Path, dst: &Path, region: &str, period: &str) {
    use tallytree_aggregator::bundle::{BundleReader, BundleWriter};
    use tallytree_proto::pb::evidence_item::Item;
    let bytes = std::fs::read(src).expect("bundle");
    let mut w = BundleWriter::new(Vec::new());
    for item in BundleReader::new(bytes.as_slice()) {
        let mut item = item.expect("readable");
        if let Some(Item::Header(h)) = &mut item.item {
            h.region = region.into();
            h.period = period.into();
        }
        w.write(&item).expect("write");
    }
    std::fs::write(dst, w.finish().expect("finish")).expect("write");
}

/// The row of `region` in `query --json` output.
fn query_row<'a>(json: &'a Value, region: &str) -> &'a Value {
    json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["region"] == region)
        .unwrap_or_else(|| panic!("no row of {region}: {json:#}"))
}

#[test]
fn a_federation_exports_bundles_an_auditor_verifies_offline() {
    let started = Instant::now();
    let fed = Federation::start();
    let cases = sample_cases();
    assert!(cases > 600, "{cases} cases in samples/cases.csv");

    // Cases recorded at the district reach the province.
    let csv = repo().join("samples/cases.csv");
    let out = fed.at(
        2,
        [
            Path::new("import").as_os_str(),
            "cases".as_ref(),
            csv.as_os_str(),
        ],
    );
    let text = expect_exit(out, 0, "import");
    assert!(text.contains(&format!("{cases} cases accepted")), "{text}");
    let json = fed.wait_for_province(cases);
    let district_row = json["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["region"] == DISTRICT)
        .expect("the district's row at the province");
    assert_eq!(district_row["verified"], true, "{district_row:#}");

    // The trust anchor: the province's public key, with its code and name.
    let anchor = fed.path("anchor.pub");
    let out = tallytree()
        .arg("--config")
        .arg(fed.province())
        .args(["keys", "export-anchor", "-o"])
        .arg(&anchor)
        .output()
        .expect("runs");
    expect_exit(out, 0, "keys export-anchor");
    let anchor_text = std::fs::read_to_string(&anchor).expect("anchor.pub");
    assert!(
        anchor_text.starts_with("# tallytree trust anchor: 210000000000 辽宁省\n"),
        "{anchor_text}"
    );

    // Export, then verify offline: no node is asked anything from here on.
    let bundle = fed.path("liaoning.bundle");
    let text = expect_exit(
        fed.audit_at(
            0,
            [
                "audit".as_ref(),
                "export".as_ref(),
                "--period".as_ref(),
                RANGE.as_ref(),
                "-o".as_ref(),
                bundle.as_os_str(),
            ],
        ),
        0,
        "audit export",
    );
    assert!(text.contains("30 summaries"), "{text}");
    let verify = |file: &Path, trust: &Path, extra: &[&str]| {
        let mut cmd = tallytree();
        cmd.args(["audit", "verify"])
            .arg(file)
            .arg("--trust")
            .arg(trust)
            .args(extra);
        cmd.output().expect("audit verify runs")
    };
    let text = expect_exit(verify(&bundle, &anchor, &[]), 0, "audit verify");
    // The verdict and the figures come from the signed summaries: the
    // province's, month by month and in total, with rates.
    assert!(
        text.contains(
            "VERIFIED: 辽宁省 (210000000000) 2026-01..2026-10: every signature, enrolment chain"
        ),
        "{text}"
    );
    assert!(
        text.contains("verified figures: 辽宁省 (210000000000, 省) · 2026-01..2026-10"),
        "{text}"
    );
    assert!(text.contains("化解率") && text.contains("完成率"), "{text}");
    let month_rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("2026-") && l.ends_with('✓'))
        .collect();
    assert_eq!(month_rows.len(), 10, "{text}");
    let total_row = text
        .lines()
        .find(|l| l.starts_with("合计"))
        .expect("a total row");
    assert_eq!(
        total_row.split_whitespace().nth(1),
        Some(cases.to_string().as_str()),
        "{text}"
    );
    let text = expect_exit(
        verify(&bundle, &anchor, &["--json", "--all"]),
        0,
        "audit verify --json",
    );
    let report: Value = serde_json::from_str(&text).expect("verify --json prints JSON");
    assert_eq!(report["verified"], true, "{report:#}");
    assert_eq!(report["problems"], 0, "{report:#}");
    assert_eq!(report["summaries"], 30, "{report:#}");
    assert_eq!(report["header"]["region"], "210000000000", "{report:#}");
    let district = report["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .find(|r| r["region"] == DISTRICT)
        .expect("the district's verdict");
    assert_eq!(district["path"], "辽宁省 › 大连市 › 普兰店区", "{report:#}");
    assert_eq!(district["verified"], true, "{report:#}");

    // What was proven is what the province's query shows: per month
    // (revision, digest, figures) and in total, and with --all each region.
    let proven = &report["proven"][0];
    assert_eq!(report["proven"].as_array().map(Vec::len), Some(1));
    assert_eq!(proven["region"], "210000000000", "{report:#}");
    assert_eq!(proven["name"], "辽宁省", "{report:#}");
    assert_eq!(proven["period"], RANGE, "{report:#}");
    assert_eq!(proven["verified"], true, "{report:#}");
    assert_eq!(
        proven["months_missing"],
        serde_json::json!([]),
        "{report:#}"
    );
    let province_row = query_row(&json, "210000000000");
    assert_eq!(proven["total"], province_row["total"], "{report:#}");
    let months = proven["months"].as_array().expect("months");
    let queried = province_row["months"].as_array().expect("months");
    assert_eq!(months.len(), 10);
    for (m, q) in months.iter().zip(queried) {
        for field in ["period", "revision", "digest", "total"] {
            assert_eq!(m[field], q[field], "{field} of {}", m["period"]);
        }
        assert_eq!(m["verified"], true);
    }
    assert_eq!(
        proven["total"]["case_totals"]["registered"], cases,
        "{report:#}"
    );
    assert!(proven["total"]["rates"]["resolution"].is_number());
    let regions = report["regions"].as_array().expect("regions");
    assert_eq!(regions.len(), 3, "{report:#}");
    for r in regions {
        let region = r["region"].as_str().expect("code");
        assert_eq!(r["total"], query_row(&json, region)["total"], "{region}");
    }
    let text = expect_exit(verify(&bundle, &anchor, &["--all"]), 0, "verify --all");
    assert!(text.contains("every region · 2026-01..2026-10 ("), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("    普兰店区 ") && l.contains(DISTRICT) && l.ends_with('✓')),
        "{text}"
    );

    // A header relabelled after the export: the summaries do not bear it
    // out, so no verdict repeats it, and the months missing are named.
    let relabelled = fed.path("relabelled.bundle");
    relabel(&bundle, &relabelled, "210000000000", "2026");
    let text = expect_exit(verify(&relabelled, &anchor, &[]), 1, "a year claimed");
    assert!(
        text.contains("summary 210000000000: no verified summary for 2026-11, 2026-12 (2 of the 12 months of the period 2026-01..2026-12 the bundle's header claims)"),
        "{text}"
    );
    assert!(
        text.contains("no verified summary for 2026-11, 2026-12\n"),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.starts_with("NOT VERIFIED")),
        "{text}"
    );
    assert!(!text.contains("VERIFIED: 辽宁省"), "{text}");
    relabel(&bundle, &relabelled, "210000000000", "2025-Q4");
    let text = expect_exit(verify(&relabelled, &anchor, &[]), 1, "another period");
    assert!(
        text.contains("no verified summary for 2025-10, 2025-11, 2025-12"),
        "{text}"
    );
    assert!(
        text.contains("summary 210000000000 2026-03 revision"),
        "{text}"
    );
    assert!(
        text.contains("outside the period 2025-10..2025-12"),
        "{text}"
    );
    relabel(&bundle, &relabelled, "210200000000", RANGE);
    let text = expect_exit(verify(&relabelled, &anchor, &[]), 1, "another region");
    assert!(text.contains("(mixed in)"), "{text}");
    assert!(!text.contains("VERIFIED: 辽宁省"), "{text}");

    // One month's export claimed as the quarter: the other two named.
    let october = fed.path("october.bundle");
    expect_exit(
        fed.audit_at(
            0,
            [
                "audit".as_ref(),
                "export".as_ref(),
                "--period".as_ref(),
                "2026-10".as_ref(),
                "-o".as_ref(),
                october.as_os_str(),
            ],
        ),
        0,
        "audit export of one month",
    );
    expect_exit(verify(&october, &anchor, &[]), 0, "one month as exported");
    relabel(&october, &relabelled, "210000000000", "2026-Q4");
    let text = expect_exit(
        verify(&relabelled, &anchor, &["--json"]),
        1,
        "a quarter claimed",
    );
    let quarter: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(quarter["verified"], false, "{quarter:#}");
    assert_eq!(
        quarter["proven"][0]["months_missing"],
        serde_json::json!(["2026-11", "2026-12"]),
        "{quarter:#}"
    );
    assert_eq!(quarter["proven"][0]["months"][0]["period"], "2026-10");

    // A byte flipped in the file: unreadable, exit 2.
    let bytes = std::fs::read(&bundle).expect("bundle");
    let flipped = fed.path("flipped.bundle");
    let mut bad = bytes.clone();
    bad[bytes.len() / 2] ^= 0x20;
    std::fs::write(&flipped, &bad).expect("write");
    let out = verify(&flipped, &anchor, &[]);
    assert_eq!(out.status.code(), Some(2), "flipped byte: {}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bundle"),
        "{}",
        show(&out)
    );

    // A truncated file: exit 2, named as truncated.
    let truncated = fed.path("truncated.bundle");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).expect("write");
    let out = verify(&truncated, &anchor, &[]);
    assert_eq!(out.status.code(), Some(2), "truncated: {}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("truncated"),
        "{}",
        show(&out)
    );

    // Another key as the anchor: nothing chains to it, exit 1.
    let wrong = fed.path("wrong-anchor.pub");
    let (other, _) = SigningKey::generate().expect("key");
    std::fs::write(
        &wrong,
        format!(
            "# tallytree trust anchor: 210000000000 辽宁省\n{}",
            other.public_key().to_pem()
        ),
    )
    .expect("write");
    let text = expect_exit(verify(&bundle, &wrong, &[]), 1, "wrong anchor");
    assert!(text.contains("NOT VERIFIED"), "{text}");

    // Inclusion proof of the district's March figures in the province's.
    let proof = fed.path("district-2026-03.proof");
    expect_exit(
        fed.audit_at(
            0,
            [
                "audit".as_ref(),
                "prove".as_ref(),
                "--region".as_ref(),
                DISTRICT.as_ref(),
                "--period".as_ref(),
                "2026-03".as_ref(),
                "-o".as_ref(),
                proof.as_os_str(),
            ],
        ),
        0,
        "audit prove",
    );
    let out = run([
        "audit".as_ref(),
        "verify-proof".as_ref(),
        proof.as_os_str(),
        "--trust".as_ref(),
        anchor.as_os_str(),
    ]);
    let text = expect_exit(out, 0, "audit verify-proof");
    assert!(
        text.contains("VERIFIED: 普兰店区 (210214000000) 2026-03"),
        "{text}"
    );
    assert!(text.contains("大连市") && text.contains("辽宁省"), "{text}");
    // The path's signed figures, top-down, in the drill-down table.
    assert!(
        text.contains("signed figures on the path · 2026-03"),
        "{text}"
    );
    for (indent, name, code) in [
        ("", "辽宁省", "210000000000"),
        ("  ", "大连市", "210200000000"),
        ("    ", "普兰店区", DISTRICT),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{indent}{name} "))
                    && l.contains(code)
                    && l.ends_with('✓')),
            "{name}: {text}"
        );
    }
    let out = run([
        "audit".as_ref(),
        "verify-proof".as_ref(),
        proof.as_os_str(),
        "--trust".as_ref(),
        wrong.as_os_str(),
    ]);
    expect_exit(out, 1, "verify-proof with the wrong anchor");
    // A bundle is not a proof: said so, with the command that reads it.
    let out = run([
        "audit".as_ref(),
        "verify-proof".as_ref(),
        bundle.as_os_str(),
        "--trust".as_ref(),
        anchor.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "an evidence bundle of 210000000000 for 2026-01..2026-10, not an inclusion proof"
        ),
        "{}",
        show(&out)
    );

    // DSSE JSON: every envelope verifies with the key listed for its keyid,
    // checked with nothing of tallytree's.
    let dsse = fed.path("liaoning.dsse.json");
    expect_exit(
        fed.audit_at(
            0,
            [
                "audit".as_ref(),
                "export".as_ref(),
                "--period".as_ref(),
                RANGE.as_ref(),
                "--format".as_ref(),
                "dsse-json".as_ref(),
                "-o".as_ref(),
                dsse.as_os_str(),
            ],
        ),
        0,
        "audit export --format dsse-json",
    );
    let doc: Value =
        serde_json::from_slice(&std::fs::read(&dsse).expect("dsse json")).expect("JSON");
    let keys = doc["keys"].as_object().expect("keys");
    // The province's key, as listed, is the anchor's.
    let anchor_key = raw_key_of_pem(&anchor_text);
    let province_key = keys
        .values()
        .find(|k| k["region"] == "210000000000")
        .expect("the province's key listed");
    assert_eq!(
        raw_key_of_pem(province_key["public_key"].as_str().expect("pem")),
        anchor_key
    );
    for (keyid, k) in keys {
        let raw = raw_key_of_pem(k["public_key"].as_str().expect("pem"));
        let digest = ring::digest::digest(&ring::digest::SHA256, &raw);
        assert_eq!(
            keyid,
            &hex(digest.as_ref()),
            "keyid is SHA-256 of the raw key"
        );
    }
    let envelopes = doc["envelopes"].as_array().expect("envelopes");
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for entry in envelopes {
        let env = &entry["envelope"];
        let payload_type = env["payloadType"].as_str().expect("payloadType");
        let payload = base64_decode(env["payload"].as_str().expect("payload"));
        let message = pae(payload_type, &payload);
        let signatures = env["signatures"].as_array().expect("signatures");
        assert!(!signatures.is_empty(), "{entry:#}");
        for s in signatures {
            let keyid = s["keyid"].as_str().expect("keyid");
            let key = raw_key_of_pem(
                keys.get(keyid)
                    .unwrap_or_else(|| panic!("keyid {keyid} not listed"))["public_key"]
                    .as_str()
                    .expect("pem"),
            );
            let sig = base64_decode(s["sig"].as_str().expect("sig"));
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key)
                .verify(&message, &sig)
                .unwrap_or_else(|_| panic!("signature by {keyid} does not verify: {entry:#}"));
            // And a changed payload does not.
            let mut altered = payload.clone();
            altered[0] ^= 1;
            assert!(
                ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key)
                    .verify(&pae(payload_type, &altered), &sig)
                    .is_err()
            );
        }
        let kind = entry["statement"].as_str().expect("statement").to_owned();
        assert!(
            payload_type.starts_with(&format!("application/vnd.tallytree.{kind}.v1")),
            "{payload_type} for a {kind}"
        );
        *kinds.entry(kind).or_default() += 1;
    }
    assert_eq!(kinds.get("summary"), Some(&30), "{kinds:?}");
    assert_eq!(kinds.get("enrolment"), Some(&2), "{kinds:?}");
    assert!(kinds.get("receipt").is_some_and(|n| *n >= 10), "{kinds:?}");

    // `audit verify` reads the DSSE JSON export too, through the same
    // auditor, and proves the same figures.
    let text = expect_exit(
        verify(&dsse, &anchor, &["--json"]),
        0,
        "verify the DSSE JSON",
    );
    let from_json: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(from_json["verified"], true, "{from_json:#}");
    assert_eq!(from_json["summaries"], 30, "{from_json:#}");
    assert_eq!(from_json["proven"], report["proven"], "{from_json:#}");
    // A JSON file that is not the export: named, with the forms to pass.
    let enrolment = fed.path("city.enrolment");
    let out = verify(&enrolment, &anchor, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a JSON file, but not the DSSE JSON export of an evidence bundle")
            && err.contains("--format dsse-json"),
        "{err}"
    );
    assert!(
        !err.contains("buffer") && !err.contains("wire type"),
        "{err}"
    );
    // Nor is a text file a bundle.
    let out = verify(&repo().join("README.md"), &anchor, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an evidence bundle"),
        "{}",
        show(&out)
    );

    eprintln!("audit_cli: {:.1?} in all", started.elapsed());
}
