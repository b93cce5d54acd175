//! `tallytree findings` against the demo's running federation: the flat
//! line planted in 玉皇庙社区 is found at the province and at its street with
//! the same id, computed from the very summaries `tallytree query` shows;
//! backfilled months are not late; bad selections are refused by field and
//! rule.

mod common;

use std::{
    path::Path,
    process::Output,
    time::{Duration, Instant},
};

use common::{demo::Demo, tallytree};
use serde_json::Value;

const STREET: &str = "210214001000";

fn findings(config: &Path, args: &[&str]) -> Output {
    tallytree()
        .arg("--config")
        .arg(config)
        .arg("findings")
        .args(args)
        .output()
        .expect("tallytree findings")
}

fn json_of(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn findings_of_the_demo_federation() {
    let root = tempfile::tempdir().expect("tempdir");
    let demo = Demo::start_kept_running(root.path());
    let province = demo.dir.join("210000000000").join("node.toml");
    let street = demo.dir.join(STREET).join("node.toml");

    let all = json_of(&findings(&province, &["--json"]));
    let list = all["findings"].as_array().expect("findings");
    let flat: Vec<&Value> = list
        .iter()
        .filter(|f| f["rule"] == "history.flatline")
        .collect();
    assert_eq!(flat.len(), 1, "one flat line: {all:#}");
    let f = flat[0];
    let flat_id = f["id"].as_str().expect("id").to_owned();
    assert_eq!(f["name"], "玉皇庙社区");
    assert_eq!(
        f["path"],
        "辽宁省 › 大连市 › 普兰店区 › 铁西街道 › 玉皇庙社区"
    );
    assert!(f["observed"].as_f64().expect("months") >= 4.0);
    assert!(
        !list.iter().any(|f| f["rule"] == "reporting.late"),
        "backfilled months are not late: {all:#}"
    );

    // Its sources are the village's counted summaries of those months.
    let village = f["region"].as_str().expect("region");
    let period = f["period"].as_str().expect("period");
    let queried = tallytree()
        .arg("--config")
        .arg(&province)
        .args([
            "query",
            "--region",
            village,
            "--period",
            period,
            "--by-month",
            "--json",
        ])
        .output()
        .expect("tallytree query");
    let queried = json_of(&queried);
    let mut digests: Vec<String> = queried["rows"][0]["months"]
        .as_array()
        .expect("months")
        .iter()
        .map(|m| m["digest"].as_str().expect("digest").to_owned())
        .collect();
    digests.sort();
    let mut sources: Vec<String> = f["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(|s| s.as_str().expect("hex").to_owned())
        .collect();
    sources.sort();
    assert_eq!(sources, digests);

    // The street finds the same finding, by the same id.
    let at_street = json_of(&findings(
        &street,
        &["--rule", "history.flatline", "--json"],
    ));
    assert_eq!(at_street["findings"][0]["id"], f["id"], "{at_street:#}");
    assert_eq!(at_street["findings"][0]["path"], "铁西街道 › 玉皇庙社区");

    // Selections: by region, by period, by severity.
    let elsewhere = json_of(&findings(
        &province,
        &[
            "--region",
            "211100000000",
            "--rule",
            "history.flatline",
            "--json",
        ],
    ));
    assert!(elsewhere["findings"].as_array().expect("list").is_empty());
    let other_year = json_of(&findings(&province, &["--period", "2001", "--json"]));
    assert!(other_year["findings"].as_array().expect("list").is_empty());

    // The table, in Chinese.
    let table = findings(&province, &[]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(table.status.success());
    assert!(
        text.contains("连续多月数据不变") && text.contains("玉皇庙社区"),
        "{text}"
    );

    // A case recorded at the village in the line's second month breaks it:
    // the village signs, the street and the district and the city sign
    // again, and the province's findings follow without a restart.
    let village_config = demo.dir.join(village).join("node.toml");
    let second = period.split("..").next().expect("first month");
    let second = tallytree_proto::Month::parse(second).expect("month").next();
    let recorded = tallytree()
        .arg("--config")
        .arg(&village_config)
        .args([
            "record",
            "case",
            "--id",
            "FLAT-BREAKER-1",
            "--category",
            "neighbour",
            "--registered",
            &format!("{second}-10"),
            "--state",
            "in_progress",
        ])
        .output()
        .expect("tallytree record");
    assert!(
        recorded.status.success(),
        "{}",
        String::from_utf8_lossy(&recorded.stderr)
    );
    let deadline = Instant::now() + common::demo::WAIT;
    loop {
        let now = json_of(&findings(
            &province,
            &["--rule", "history.flatline", "--json"],
        ));
        let list = now["findings"].as_array().expect("list");
        if list
            .iter()
            .all(|f| f["id"].as_str() != Some(flat_id.as_str()))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the flat line is still found after the new case: {now:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Refusals name the field and the rule.
    let bad = findings(&province, &["--rule", "too.good"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("rule (too.good): unknown rule"), "{err}");
    let bad = findings(&province, &["--severity", "high"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("severity (high): one of notice, warning"),
        "{err}"
    );
    let outside = findings(&street, &["--region", "210200000000"]);
    let err = String::from_utf8_lossy(&outside.stderr);
    assert!(err.contains("not in the subtree"), "{err}");
}
