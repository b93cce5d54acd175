//! Replays the fuzz corpus and every past crash on the stable toolchain:
//! each file of `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/`
//! goes through the target's body in `tallytree_cli::fuzzing`, the very code
//! `cargo fuzz run <target>` drives. `scripts/fuzz` runs the fuzzer itself.
//!
//! `TALLYTREE_WRITE_SEEDS=1 cargo test -p tallytree-cli --test fuzz_replay`
//! writes the seed files (real envelopes, a small bundle, sample sheets and
//! anchors) into the corpus.

use std::{
    fs,
    path::{Path, PathBuf},
};

use prost::Message;
use tallytree_aggregator::{audit::Auditor, bundle::BundleReader};
use tallytree_cli::fuzzing::{self, TARGETS};
use tallytree_node::tls::material::{Authority, RequestedKey, TlsKey};
use tallytree_proto::{RegionCode, envelope::DsseJson, pb, statement};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Files of `dir`, sorted; none when it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn every_corpus_file_and_past_crash_replays_without_a_panic() {
    if std::env::var_os("TALLYTREE_WRITE_SEEDS").is_some() {
        write_seeds();
    }
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(name));
        assert!(!corpus.is_empty(), "fuzz/corpus/{name}/ has no seed");
        for path in corpus
            .iter()
            .chain(&files(&fuzz_dir().join("artifacts").join(name)))
        {
            let data = fs::read(path).expect("read corpus file");
            let result = std::panic::catch_unwind(|| target(&data));
            assert!(result.is_ok(), "{name}: {} panics", path.display());
            replayed += 1;
        }
    }
    assert!(replayed >= TARGETS.len());
}

#[test]
fn no_single_bit_flip_of_a_valid_envelope_verifies_as_other_content() {
    let len = fuzzing::sample_summary().encoded_len();
    for at in 0..len {
        for bit in 0..8u8 {
            let at = u16::try_from(at).expect("small envelope").to_le_bytes();
            // Asserts inside: verified means payload and type unchanged.
            fuzzing::mutated_envelope(&[at[0], at[1], 1 << bit]);
        }
        fuzzing::mutated_envelope(&[at as u8, (at >> 8) as u8, 0]);
    }
}

#[test]
fn the_sample_bundle_verifies() {
    let mut auditor = Auditor::new(
        &[(
            RegionCode::parse(fuzzing::ANCHOR_REGION).expect("code"),
            fuzzing::anchor_key().public_key(),
        )],
        1,
    );
    for item in BundleReader::new(fuzzing::sample_bundle().as_slice()) {
        auditor.feed(item.expect("sample bundle reads"));
    }
    let report = auditor.finish();
    assert!(report.verified(), "{report:?}");
}

/// The seed corpus: small, real inputs each target starts from.
fn write_seeds() {
    let summary = fuzzing::sample_summary();
    let enrolment = fuzzing::sample_enrolment();
    let bundle = fuzzing::sample_bundle();
    let json = |env: &pb::Envelope| {
        serde_json::to_vec_pretty(&DsseJson::from_envelope(env)).expect("json")
    };
    let export = serde_json::json!({
        "header": {"format": "tallytree-evidence-dsse-json/1", "region": fuzzing::ANCHOR_REGION, "period": "2026-03"},
        "envelopes": [
            {"statement": "enrolment", "envelope": DsseJson::from_envelope(&enrolment)},
            {"statement": "summary", "envelope": DsseJson::from_envelope(summary)},
        ],
    });
    let with = |which: u8, bytes: Vec<u8>| [vec![which], bytes].concat();
    let case = pb::Case {
        id: "A-1".into(),
        category: 1,
        registered_on: "2026-03-02".into(),
        state: 2,
        closed_on: "2026-03-09".into(),
        deadline: String::new(),
    };
    let task = pb::Task {
        id: "T-1".into(),
        title: "排查".into(),
        deadline: "2026-03-20".into(),
        state: 1,
    };
    let pem = fuzzing::anchor_key().public_key().to_pem();
    // The child's TLS key as its enrolment request carries it, and the
    // certificate the anchor's CA issues for it, as an install carries it.
    let child_region = RegionCode::parse(fuzzing::CHILD_REGION).expect("code");
    let csr = TlsKey::generate()
        .expect("TLS key")
        .csr_pem(child_region, "大连市")
        .expect("certificate request");
    let now_ms = 1_775_000_000_000;
    let ca = Authority::in_memory(
        RegionCode::parse(fuzzing::ANCHOR_REGION).expect("code"),
        "辽宁省",
        now_ms,
    )
    .expect("CA");
    let certificate = ca
        .issue_child(
            &RequestedKey::from_csr_pem(&csr).expect("request"),
            child_region,
            "大连市",
            now_ms,
        )
        .expect("certificate");
    let seeds: Vec<(&str, &str, Vec<u8>)> = vec![
        ("envelope", "summary", summary.encode_to_vec()),
        ("envelope", "enrolment", enrolment.encode_to_vec()),
        ("dsse_json", "summary.json", json(summary)),
        (
            "dsse_json",
            "export.json",
            serde_json::to_vec_pretty(&export).expect("json"),
        ),
        ("mutated_envelope", "one_flip", vec![10, 0, 1]),
        ("mutated_envelope", "two_changes", vec![40, 0, 0x80, 7, 0, 0]),
        (
            "rpc_request",
            "submit",
            with(
                0,
                pb::SubmitRequest {
                    summary: Some(summary.clone()),
                    enrolments: vec![enrolment.clone()],
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
        ),
        (
            "rpc_request",
            "record_cases",
            with(
                1,
                pb::RecordCasesRequest {
                    cases: vec![case.clone()],
                }
                .encode_to_vec(),
            ),
        ),
        (
            "rpc_request",
            "record_tasks",
            with(
                2,
                pb::RecordTasksRequest {
                    tasks: vec![task.clone()],
                }
                .encode_to_vec(),
            ),
        ),
        (
            "rpc_request",
            "direct_tally",
            with(
                3,
                pb::DirectTally {
                    period: "2026-03".into(),
                    cases: vec![pb::CaseCounts {
                        category: 1,
                        registered: 3,
                        resolved: 2,
                        in_progress: 1,
                        resolved_on_time: 2,
                        ..Default::default()
                    }],
                    tasks: None,
                }
                .encode_to_vec(),
            ),
        ),
        (
            "rpc_request",
            "import_chunk",
            with(
                4,
                pb::ImportChunk {
                    cases: vec![pb::ImportCase {
                        line: 2,
                        case: Some(case),
                    }],
                    tasks: vec![pb::ImportTask {
                        line: 3,
                        task: Some(task),
                    }],
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
        ),
        (
            "rpc_request",
            "enrol",
            with(
                5,
                pb::EnrolRequest {
                    region: fuzzing::CHILD_REGION.into(),
                    name: "大连市".into(),
                    public_key: fuzzing::child_key().public_key().0.to_vec(),
                    tls_csr: csr.clone(),
                }
                .encode_to_vec(),
            ),
        ),
        (
            "rpc_request",
            "install",
            with(
                7,
                pb::InstallRequest {
                    enrolment: Some(enrolment.clone()),
                    parent_public_key: fuzzing::anchor_key().public_key().0.to_vec(),
                    client_certificate: certificate.cert_pem.clone(),
                    parent_ca_certificate: ca.cert_pem().to_owned(),
                }
                .encode_to_vec(),
            ),
        ),
        (
            "rpc_request",
            "tally",
            with(
                12,
                pb::TallyRequest {
                    region: fuzzing::ANCHOR_REGION.into(),
                    period: "2026-01..2026-03".into(),
                    depth: 1,
                }
                .encode_to_vec(),
            ),
        ),
        ("bundle", "small", bundle),
        (
            "sheet",
            "cases",
            with(
                0,
                "\u{feff}编号,类别,登记日期,状态,办结日期\nA-1,邻里,2026-03-02,已化解,2026-03-09\nA-2,traffic,2026-03-02,在办,\n"
                    .into(),
            ),
        ),
        (
            "sheet",
            "tasks",
            with(
                1,
                "id,title,deadline,state\nT-1,\"排查, 走访\",2026-03-20,进行中\nT-2,复核,2026-03-25,completed\n"
                    .into(),
            ),
        ),
        (
            "anchors",
            "anchor.pem",
            format!("# tallytree trust anchor: {} 辽宁省\n{pem}", fuzzing::ANCHOR_REGION).into(),
        ),
        (
            "anchors",
            "hex",
            hex_of(&fuzzing::anchor_key().public_key().0).into_bytes(),
        ),
        ("roots", "chain", root_chain()),
    ];
    for (target, name, bytes) in seeds {
        let dir = fuzz_dir().join("corpus").join(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        fs::write(dir.join(name), bytes).expect("write seed");
    }
    // The seeds are what they claim: the summary verifies.
    let key = fuzzing::anchor_key().public_key();
    statement::open::<pb::Summary>(summary, &key).expect("sample summary verifies");
}

/// Version 1 (the pinned root) and a version 2 it signed: a chain a walk
/// accepts.
fn root_chain() -> Vec<u8> {
    let key = fuzzing::anchor_key();
    let first = fuzzing::pinned_root();
    let mut second: pb::Root = statement::peek_unverified(&first).expect("a root");
    second.version = 2;
    second.issued_at_ms += 1;
    let second = tallytree_aggregator::root::sign_root(&second, &[key]);
    pb::RootsResponse {
        roots: vec![first, second],
    }
    .encode_to_vec()
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
