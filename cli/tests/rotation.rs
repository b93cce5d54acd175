//! A child's keys over their life, from the command line, between two real
//! `tallytree-node` processes (普兰店区 › 城子坦街道): `enrol` at the parent
//! with the child's node.pub (its signing key and its TLS key's
//! certificate request), `install-enrolment` at the child, figures pushed
//! over mutual TLS; then `rotate-key` at the child (next signing and TLS
//! keys), the parent enrols node.key.next.pub, the child installs it and
//! switches both keys, and its figures keep arriving, now under the new
//! certificate. An enrolment of keys the child no longer holds is refused.

mod common;

use std::{
    path::Path,
    process::Output,
    time::{Duration, Instant},
};

use common::{Unit, show};
use serde_json::Value;
use tallytree_proto::PublicKey;

/// Longest the figures may take to reach the parent.
const WAIT: Duration = Duration::from_secs(30);
/// The child.
const STREET: &str = "210214001000";
/// Its name.
const STREET_NAME: &str = "城子坦街道";

fn expect_exit(out: &Output, code: i32, what: &str) -> String {
    assert_eq!(out.status.code(), Some(code), "{what}: {}", show(out));
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

/// A case of 2026-03 at the street.
fn record(street: &Unit, id: &str) {
    let out = street.run([
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
    ]);
    expect_exit(&out, 0, "record at the street");
}

/// Waits until the parent shows `cases` cases of the street in 2026-03,
/// verified; returns the street's row.
fn wait_at_parent(parent: &Unit, street: &Unit, cases: u64) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = parent.run(["query", "--period", "2026-03", "--depth", "1", "--json"]);
        let json: Value =
            serde_json::from_str(&expect_exit(&out, 0, "query at the parent")).expect("JSON");
        let row = json["rows"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["region"] == STREET))
            .cloned();
        if let Some(row) = row
            && row["total"]["case_totals"]["registered"] == cases
            && row["verified"] == true
        {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "the parent did not get {cases} cases of the street: {json:#}\n--- parent\n{}\n--- street\n{}",
            parent.log(),
            street.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `enrol` at the parent of the public file `key`, written to `out`.
fn enrol(parent: &Unit, key: &Path, out: &Path) -> Output {
    parent.run([
        "enrol".as_ref(),
        "--code".as_ref(),
        STREET.as_ref(),
        "--name".as_ref(),
        STREET_NAME.as_ref(),
        "--key".as_ref(),
        key.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ])
}

#[test]
fn a_child_rotates_its_keys_and_keeps_pushing_over_mutual_tls() {
    let parent = Unit::init_and_start("210214000000", "普兰店区");
    let mut street = Unit::init(STREET, STREET_NAME, &["--parent", &parent.url()]);
    street.start();

    // Enrolled with its node.pub: the file for the child carries the
    // client certificate and the parent's CA certificate.
    let first = street.path("enrolment-1.json");
    let text = expect_exit(
        &enrol(&parent, &street.path("node.pub"), &first),
        0,
        "enrol",
    );
    assert!(text.contains("with its TLS certificate"), "{text}");
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(&first).expect("enrolment file"))
            .expect("JSON");
    let parent_ca = std::fs::read_to_string(parent.path("ca.pem")).expect("ca.pem");
    assert_eq!(
        file["parent_ca_certificate"],
        parent_ca.as_str(),
        "{file:#}"
    );
    assert!(
        file["client_certificate"]
            .as_str()
            .is_some_and(|c| c.starts_with("-----BEGIN CERTIFICATE-----")),
        "{file:#}"
    );
    let out = street.run(["install-enrolment".as_ref(), first.as_os_str()]);
    expect_exit(&out, 0, "install-enrolment");
    record(&street, "S-1");
    wait_at_parent(&parent, &street, 1);

    // rotate-key: the next signing and TLS keys beside the current ones,
    // and their public file for the parent.
    let old_key = PublicKey::load(&street.path("node.pub")).expect("node.pub");
    let out = street.run(["rotate-key"]);
    let text = expect_exit(&out, 0, "rotate-key");
    let next_pub = street.path("node.key.next.pub");
    assert!(text.contains(&next_pub.display().to_string()), "{text}");
    for file in ["node.key.next", "tls.key.next"] {
        assert!(street.path(file).is_file(), "{file} not written");
    }
    let public = std::fs::read_to_string(&next_pub).expect("next public file");
    assert!(
        public.contains("BEGIN PUBLIC KEY") && public.contains("BEGIN CERTIFICATE REQUEST"),
        "{public}"
    );
    let new_key = PublicKey::load(&next_pub).expect("next key");
    assert_ne!(new_key, old_key);
    let tls_before = std::fs::read_to_string(street.path("tls.key")).expect("tls.key");
    let tls_next = std::fs::read_to_string(street.path("tls.key.next")).expect("tls.key.next");
    // A second rotation before the first is installed is refused.
    let out = street.run(["rotate-key"]);
    expect_exit(&out, 2, "rotate-key again");

    // The parent enrols the next keys; the child installs them and
    // switches to both.
    let second = street.path("enrolment-2.json");
    expect_exit(
        &enrol(&parent, &next_pub, &second),
        0,
        "enrol the next keys",
    );
    let out = street.run(["install-enrolment".as_ref(), second.as_os_str()]);
    expect_exit(&out, 0, "install the next keys");
    assert!(!street.path("tls.key.next").exists(), "tls.key.next left");
    let tls_after = std::fs::read_to_string(street.path("tls.key")).expect("tls.key");
    assert_eq!(tls_after, tls_next);
    assert_ne!(tls_after, tls_before);
    let shown = expect_exit(&street.run(["keys", "show"]), 0, "keys show");
    assert!(shown.contains(&new_key.key_id()), "{shown}");

    // Figures recorded now reach the parent, pushed with the new
    // certificate and signed with the new key.
    record(&street, "S-2");
    wait_at_parent(&parent, &street, 2);

    // The first enrolment binds keys the child holds no more: refused.
    let out = street.run(["install-enrolment".as_ref(), first.as_os_str()]);
    expect_exit(&out, 1, "installing the old enrolment");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused: enrolment: binds TLS key")
            && String::from_utf8_lossy(&out.stderr)
                .contains("which is neither this node's TLS key"),
        "{}",
        show(&out)
    );
    street.stop();
    parent.stop();
}
