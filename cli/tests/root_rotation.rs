//! The province's root of trust over its life, from the command line,
//! between two real `tallytree-node` processes (辽宁省 › 大连市): root
//! version 1 pinned by the auditor; a rotation to two new root keys with a
//! threshold of two; a rotation to a new node key, to which the province
//! switches. The city keeps pushing throughout (it follows the province's
//! key succession to the new key), and a bundle holding summaries signed
//! under both node keys verifies with the first root, and with the last; a
//! chain with a link taken out does not.

mod common;

use std::{
    path::Path,
    process::Output,
    time::{Duration, Instant},
};

use common::{Unit, show};
use serde_json::Value;
use tallytree_proto::SigningKey;

const WAIT: Duration = Duration::from_secs(30);
const CITY: &str = "210200000000";

fn expect_exit(out: &Output, code: i32, what: &str) -> String {
    assert_eq!(out.status.code(), Some(code), "{what}: {}", show(out));
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

/// A case of `month` at the city.
fn record(city: &Unit, id: &str, month: &str) {
    let out = city.run([
        "record",
        "case",
        "--id",
        id,
        "--category",
        "邻里",
        "--registered",
        &format!("{month}-02"),
        "--state",
        "in_progress",
    ]);
    expect_exit(&out, 0, "record at the city");
}

/// Waits until the province shows the city's `month`, verified.
fn wait_at_province(province: &Unit, city: &Unit, month: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = province.run(["query", "--period", month, "--depth", "1", "--json"]);
        let json: Value =
            serde_json::from_str(&expect_exit(&out, 0, "query at the province")).expect("JSON");
        let counted = json["rows"].as_array().is_some_and(|rows| {
            rows.iter().any(|r| {
                r["region"] == CITY
                    && r["verified"] == true
                    && r["total"]["case_totals"]["registered"] == 1
            })
        });
        if counted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the province did not count the city's {month}: {json:#}\n--- province\n{}\n--- city\n{}",
            province.log(),
            city.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn key_file(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    SigningKey::generate_to_file(&path).expect("key written");
    path
}

#[test]
fn two_rotations_then_a_bundle_verifies_with_the_first_root() {
    let province = Unit::init_and_start("210000000000", "辽宁省");
    let mut city = Unit::init(CITY, "大连市", &["--parent", &province.url()]);
    city.start();
    let enrolment = city.path("enrolment.json");
    let out = province.run([
        "enrol".as_ref(),
        "--code".as_ref(),
        CITY.as_ref(),
        "--name".as_ref(),
        "大连市".as_ref(),
        "--key".as_ref(),
        city.path("node.pub").as_os_str(),
        "-o".as_ref(),
        enrolment.as_os_str(),
    ]);
    expect_exit(&out, 0, "enrol the city");
    expect_exit(
        &city.run(["install-enrolment".as_ref(), enrolment.as_os_str()]),
        0,
        "install",
    );

    // Version 1, signed by the province's node key: what the auditor pins.
    let root1 = province.path("root-1.json");
    let text = expect_exit(
        &province.run([
            "root".as_ref(),
            "init".as_ref(),
            "-o".as_ref(),
            root1.as_os_str(),
        ]),
        0,
        "root init",
    );
    assert!(text.contains("root version 1 of 210000000000"), "{text}");
    record(&city, "C-1", "2026-03");
    wait_at_province(&province, &city, "2026-03");

    // Version 2: two new root keys, both needed from now on.
    let keys = province.dir.path();
    let (a, b) = (key_file(keys, "a.key"), key_file(keys, "b.key"));
    let root2 = province.path("root-2.json");
    let out = province.run([
        "root".as_ref(),
        "rotate".as_ref(),
        "--sign-with".as_ref(),
        province.path("node.key").as_os_str(),
        "--key".as_ref(),
        a.as_os_str(),
        "--key".as_ref(),
        b.as_os_str(),
        "--threshold".as_ref(),
        "2".as_ref(),
        "-o".as_ref(),
        root2.as_os_str(),
    ]);
    let text = expect_exit(&out, 0, "root rotate to two keys");
    assert!(text.contains("2 key(s), threshold 2"), "{text}");

    // One of the two is not enough for version 3.
    expect_exit(
        &province.run(["rotate-key"]),
        0,
        "rotate-key at the province",
    );
    let root3 = province.path("root-3.json");
    let rotate3 = |sign_with: &[&Path]| {
        let mut args: Vec<&std::ffi::OsStr> = vec!["root".as_ref(), "rotate".as_ref()];
        for k in sign_with {
            args.push("--sign-with".as_ref());
            args.push(k.as_os_str());
        }
        let next_pub = province.path("node.key.next.pub");
        let mut args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        args.extend(["--node-key".into(), next_pub.into_os_string()]);
        args.extend(["-o".into(), root3.clone().into_os_string()]);
        province.run(args)
    };
    let out = rotate3(&[&a]);
    assert_ne!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("signed by 1 distinct key(s) of version 2 (2 keys), 2 needed"),
        "{}",
        show(&out)
    );
    // Both: version 3 names the province's next key, and the node switches.
    let text = expect_exit(&rotate3(&[&a, &b]), 0, "root rotate to a new node key");
    assert!(text.contains("root version 3"), "{text}");
    assert!(
        !province.path("node.key.next").exists(),
        "the node did not switch keys"
    );

    // The city's next figures are receipted under the new key, which it
    // follows from the province's key succession.
    record(&city, "C-2", "2026-04");
    wait_at_province(&province, &city, "2026-04");
    assert!(
        city.log()
            .contains("parent's new key followed from its key successions"),
        "{}",
        city.log()
    );

    // The auditor's bundle: summaries signed under both node keys.
    let auditor = province.add_token("auditor", "审计组");
    let bundle = province.path("liaoning.bundle");
    let out = province.run_as(
        &auditor,
        [
            "audit".as_ref(),
            "export".as_ref(),
            "--period".as_ref(),
            "2026-03..2026-04".as_ref(),
            "-o".as_ref(),
            bundle.as_os_str(),
        ],
    );
    expect_exit(&out, 0, "export");
    for pinned in [&root1, &root2, &root3] {
        let out = province.run([
            "audit".as_ref(),
            "verify".as_ref(),
            bundle.as_os_str(),
            "--trust".as_ref(),
            pinned.as_os_str(),
        ]);
        let text = expect_exit(&out, 0, "verify with a pinned root");
        assert!(text.contains("VERIFIED: 辽宁省"), "{text}");
    }

    // The same evidence with version 2 taken out of its chain: version 3
    // does not follow version 1.
    let json_path = province.path("liaoning.json");
    let out = province.run_as(
        &auditor,
        [
            "audit".as_ref(),
            "export".as_ref(),
            "--period".as_ref(),
            "2026-03..2026-04".as_ref(),
            "--format".as_ref(),
            "dsse-json".as_ref(),
            "-o".as_ref(),
            json_path.as_os_str(),
        ],
    );
    expect_exit(&out, 0, "export as DSSE JSON");
    let mut json: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).expect("read")).expect("JSON");
    let envelopes = json["envelopes"].as_array_mut().expect("envelopes");
    let roots = envelopes
        .iter()
        .filter(|e| e["statement"] == "root")
        .count();
    assert_eq!(roots, 3, "the bundle carries the chain");
    let second = envelopes
        .iter()
        .position(|e| e["statement"] == "root")
        .expect("a root")
        + 1;
    envelopes.remove(second);
    let broken = province.path("broken.json");
    std::fs::write(&broken, json.to_string()).expect("write");
    let out = province.run([
        "audit".as_ref(),
        "verify".as_ref(),
        broken.as_os_str(),
        "--trust".as_ref(),
        root1.as_os_str(),
    ]);
    let text = expect_exit(&out, 1, "verify with a link missing");
    assert!(
        text.contains("root version 3 does not follow version 1: version 2 is missing"),
        "{text}"
    );
    city.stop();
    province.stop();
}
