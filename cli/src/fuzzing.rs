//! The decoders a stranger can reach, as the fuzz targets in `fuzz/` call
//! them: each target is one function here taking arbitrary bytes, so that
//! the stable test `tests/fuzz_replay.rs` replays the committed corpus and
//! every past crash through the very same code. None of them may panic on
//! any input; a panic is a bug in the decoder (or a broken property below).
//!
//! Keys are fixed (derived from constant seeds), so a corpus stays valid
//! across runs and a signed envelope in it still verifies.

use std::{path::Path, sync::OnceLock};

use prost::Message;
use tallytree_aggregator::{
    SummaryView, Tally, Trust,
    audit::Auditor,
    bundle::{BundleReader, BundleWriter},
    root::{RootChain, RootView, sign_root},
};
use tallytree_node::{
    records::{self, Rules},
    tls::material::{RequestedKey, spki_digest},
};
use tallytree_proto::{
    Month, PeriodRange, PublicKey, RegionCode, SigningKey,
    envelope::DsseJson,
    pb,
    statement::{self, Statement},
};

use tallytree_node::sheet::{Kind, Sheet};

use crate::evidence::{dsse_json, parse_anchors};

/// 辽宁省: the region of the fixed trust anchor.
pub const ANCHOR_REGION: &str = "210000000000";
/// 大连市: the region enrolled under the anchor in the samples.
pub const CHILD_REGION: &str = "210200000000";

/// The anchor's signing key, from a constant seed.
pub fn anchor_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    // A 32-byte seed is always an Ed25519 seed.
    KEY.get_or_init(|| SigningKey::from_seed_only(&[1; 32]).expect("32-byte seed"))
}

/// The child's signing key, from another constant seed.
pub fn child_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_seed_only(&[2; 32]).expect("32-byte seed"))
}

fn anchor_region() -> RegionCode {
    RegionCode::parse(ANCHOR_REGION).expect("constant region code")
}

fn anchor_trust() -> Trust {
    Trust::with_anchor(anchor_region(), anchor_key().public_key())
}

/// The rules intake applies, on a fixed day.
fn rules() -> Rules {
    Rules {
        today: chrono::NaiveDate::from_ymd_opt(2026, 3, 31).expect("constant date"),
        default_deadline_days: 30,
    }
}

/// A valid summary of the anchor region for March 2026, signed by the anchor.
pub fn sample_summary() -> &'static pb::Envelope {
    static ENV: OnceLock<pb::Envelope> = OnceLock::new();
    ENV.get_or_init(|| {
        let view = SummaryView {
            region: anchor_region(),
            name: "辽宁省".into(),
            parent: None,
            period: Month::parse("2026-03").expect("constant month"),
            revision: 1,
            issued_at_ms: 1_774_915_200_000,
            local: Tally::default(),
            total: Tally::default(),
            children_expected: 0,
            children: Vec::new(),
        };
        statement::seal(anchor_key(), &view.to_pb()).envelope
    })
}

/// The child's enrolment, signed by the anchor.
pub fn sample_enrolment() -> pb::Envelope {
    let enrolment = pb::Enrolment {
        parent: ANCHOR_REGION.into(),
        region: CHILD_REGION.into(),
        name: "大连市".into(),
        public_key: child_key().public_key().0.to_vec(),
        serial: 1,
        // After the summary was issued: the summary expects no children.
        valid_from_ms: 1_775_001_600_000,
        issued_at_ms: 1_775_001_600_000,
        tls_spki_sha256: Vec::new(),
    };
    statement::seal(anchor_key(), &enrolment).envelope
}

/// A small bundle: header, the child's enrolment, the anchor's summary, trailer.
pub fn sample_bundle() -> Vec<u8> {
    let mut w = BundleWriter::new(Vec::new());
    let items = [
        pb::evidence_item::Item::Header(pb::EvidenceHeader {
            region: ANCHOR_REGION.into(),
            period: "2026-03".into(),
            ..Default::default()
        }),
        pb::evidence_item::Item::Enrolment(sample_enrolment()),
        pb::evidence_item::Item::Summary(sample_summary().clone()),
    ];
    for item in items {
        // Writing to a Vec cannot fail.
        w.write(&pb::EvidenceItem { item: Some(item) })
            .expect("write to memory");
    }
    w.finish().expect("write to memory")
}

/// Decodes `bytes` as `M`; a message that decodes must encode to bytes that
/// decode to the same message (prost's round trip).
fn decoded<M: Message + Default + PartialEq + std::fmt::Debug>(bytes: &[u8]) -> Option<M> {
    let m = M::decode(bytes).ok()?;
    let again = M::decode(m.encode_to_vec().as_slice()).expect("a re-encoded message decodes");
    assert_eq!(again, m, "decode(encode(m)) != m");
    Some(m)
}

/// Opens `env` as each kind of statement with the anchor's key, and peeks
/// at it unverified the way routing does.
fn open_every_way(env: &pb::Envelope) {
    let key = anchor_key().public_key();
    fn both<S: Statement>(env: &pb::Envelope, key: &PublicKey) {
        let _ = statement::open::<S>(env, key);
        let _ = statement::peek_unverified::<S>(env);
    }
    both::<pb::Summary>(env, &key);
    both::<pb::Enrolment>(env, &key);
    both::<pb::Revocation>(env, &key);
    both::<pb::Receipt>(env, &key);
    if let Ok(s) = statement::peek_unverified::<pb::Summary>(env) {
        let _ = SummaryView::from_pb(&s);
    }
    let trust = anchor_trust();
    let _ = trust.open_summary(env);
    let _ = trust.check_enrolment(env);
}

/// Target `envelope`: protobuf envelope bytes, verified and opened.
pub fn envelope(data: &[u8]) {
    if let Some(env) = decoded::<pb::Envelope>(data) {
        open_every_way(&env);
        // The JSON form carries the same envelope.
        let json = DsseJson::from_envelope(&env);
        assert_eq!(json.to_envelope().as_ref(), Ok(&env), "JSON round trip");
    }
}

/// Target `dsse_json`: one DSSE JSON envelope, and a whole DSSE JSON export.
pub fn dsse_json(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(json) = DsseJson::parse(text)
        && let Ok(env) = json.to_envelope()
    {
        open_every_way(&env);
    }
    if let Ok(items) = dsse_json::read(data) {
        for item in &items {
            if let Some(
                pb::evidence_item::Item::Summary(env)
                | pb::evidence_item::Item::Enrolment(env)
                | pb::evidence_item::Item::Revocation(env)
                | pb::evidence_item::Item::Receipt(env),
            ) = &item.item
            {
                open_every_way(env);
            }
        }
    }
}

/// Target `mutated_envelope`: the encoded valid summary, altered by the
/// input (3 bytes per change: a little-endian position and a value to XOR
/// there, or 0 to delete the byte). Whatever decodes and verifies must carry
/// the signed payload type and payload unchanged: the key id is only a hint
/// and not signed, so a change there may still verify.
pub fn mutated_envelope(data: &[u8]) {
    let original = sample_summary();
    let mut bytes = original.encode_to_vec();
    for change in data.chunks_exact(3) {
        if bytes.is_empty() {
            break;
        }
        let at = usize::from(u16::from_le_bytes([change[0], change[1]])) % bytes.len();
        match change[2] {
            0 => {
                bytes.remove(at);
            }
            x => bytes[at] ^= x,
        }
    }
    let Ok(env) = pb::Envelope::decode(bytes.as_slice()) else {
        return;
    };
    let unchanged = env.payload == original.payload && env.payload_type == original.payload_type;
    let key = anchor_key().public_key();
    if statement::open::<pb::Summary>(&env, &key).is_ok() {
        assert!(unchanged, "an altered envelope verified: {env:?}");
    }
    if anchor_trust().open_summary(&env).is_ok() {
        assert!(unchanged, "an altered envelope opened: {env:?}");
    }
}

/// Target `rpc_request`: the first byte picks a request message of the
/// node's services, the rest is its encoding. Each is decoded (and must
/// round-trip), then put through the pure checks the node runs first.
pub fn rpc_request(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let rules = rules();
    match which % 14 {
        0 => {
            if let Some(r) = decoded::<pb::SubmitRequest>(bytes) {
                let trust = anchor_trust();
                let _ = trust.check_all(&r.enrolments, &r.revocations);
                for env in r.summary.iter().chain(&r.descendants) {
                    let _ = trust.open_summary(env);
                }
            }
        }
        1 => {
            if let Some(r) = decoded::<pb::RecordCasesRequest>(bytes) {
                for c in &r.cases {
                    let _ = records::parse_case(c, &rules);
                }
            }
        }
        2 => {
            if let Some(r) = decoded::<pb::RecordTasksRequest>(bytes) {
                for t in &r.tasks {
                    let _ = records::parse_task(t);
                }
            }
        }
        3 => {
            if let Some(d) = decoded::<pb::DirectTally>(bytes) {
                let _ = records::parse_direct(&d, &rules);
            }
        }
        4 => {
            if let Some(chunk) = decoded::<pb::ImportChunk>(bytes) {
                for c in chunk.cases.iter().filter_map(|c| c.case.as_ref()) {
                    let _ = records::parse_case(c, &rules);
                }
                for t in chunk.tasks.iter().filter_map(|t| t.task.as_ref()) {
                    let _ = records::parse_task(t);
                }
            }
        }
        5 => {
            if let Some(r) = decoded::<pb::EnrolRequest>(bytes) {
                let _ = RegionCode::parse(&r.region);
                let _ = PublicKey::from_slice(&r.public_key);
                // The child's certificate request, as the parent reads it.
                if let Ok(key) = RequestedKey::from_csr_pem(&r.tls_csr) {
                    let _ = key.spki_digest();
                }
            }
        }
        6 => {
            if let Some(r) = decoded::<pb::RevokeRequest>(bytes) {
                let _ = RegionCode::parse(&r.region);
                let _ = PublicKey::from_slice(&r.public_key);
            }
        }
        7 => {
            if let Some(r) = decoded::<pb::InstallRequest>(bytes) {
                if let (Some(env), Ok(parent)) =
                    (&r.enrolment, PublicKey::from_slice(&r.parent_public_key))
                {
                    let _ = Trust::with_anchor(anchor_region(), parent).check_enrolment(env);
                }
                // The certificates, as the child reads them.
                let _ = tls_certificate_key(&r.client_certificate);
                let _ = tls_certificate_key(&r.parent_ca_certificate);
            }
        }
        8 => {
            let _ = decoded::<pb::ListEnrolmentsRequest>(bytes);
        }
        9 => {
            if let Some(r) = decoded::<pb::RevisionsRequest>(bytes) {
                region_and_period(&r.region, &r.period);
            }
        }
        10 => {
            if let Some(r) = decoded::<pb::ExportEvidenceRequest>(bytes) {
                region_and_period(&r.region, &r.period);
            }
        }
        11 => {
            if let Some(r) = decoded::<pb::ProveRequest>(bytes) {
                region_and_period(&r.region, &r.period);
            }
        }
        12 => {
            if let Some(r) = decoded::<pb::TallyRequest>(bytes) {
                region_and_period(&r.region, &r.period);
            }
        }
        _ => {
            let _ = decoded::<pb::IdentityRequest>(bytes);
        }
    }
}

fn region_and_period(region: &str, period: &str) {
    let _ = RegionCode::parse(region);
    let _ = Month::parse(period);
    let _ = PeriodRange::parse(period);
}

/// Target `bundle`: bundle file bytes through the reader and the auditor,
/// trusting the fixed anchor (one verifying thread).
pub fn bundle(data: &[u8]) {
    let mut auditor = Auditor::new(&[(anchor_region(), anchor_key().public_key())], 1);
    for item in BundleReader::new(data) {
        match item {
            Ok(item) => auditor.feed(item),
            Err(_) => break,
        }
    }
    let report = auditor.finish();
    let _ = report.verified();
}

/// Target `sheet`: the first byte picks cases or tasks, the rest is the CSV
/// file `tallytree import` reads.
pub fn sheet(data: &[u8]) {
    let Some((&which, text)) = data.split_first() else {
        return;
    };
    let kind = if which % 2 == 0 {
        Kind::Cases
    } else {
        Kind::Tasks
    };
    let Ok(mut sheet) = Sheet::new(text, kind) else {
        return;
    };
    let rules = rules();
    while let Some(row) = sheet.next_row() {
        // The node checks what the sheet produced with the same rules.
        match row {
            Ok(Ok((_, tallytree_node::sheet::Row::Case(c)))) => {
                let _ = records::parse_case(&c, &rules);
            }
            Ok(Ok((_, tallytree_node::sheet::Row::Task(t)))) => {
                let _ = records::parse_task(&t);
            }
            Ok(Err(_)) | Err(_) => {}
        }
    }
}

/// Target `anchors`: a trust anchor file, and a bare public key.
pub fn anchors(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_anchors(text, Path::new("anchors.pem"));
    if let Some(key) = PublicKey::parse(text) {
        assert_eq!(PublicKey::parse(&key.to_pem()), Some(key), "PEM round trip");
    }
}

/// The key a PEM certificate carries, read as a node reads its client
/// certificate and its parent's CA from an install request.
fn tls_certificate_key(pem: &str) -> Option<tallytree_proto::Digest> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")?;
    let block = &pem[start..];
    let end = block.find("-----END CERTIFICATE-----")?;
    let body: String = block["-----BEGIN CERTIFICATE-----".len()..end]
        .split_whitespace()
        .collect();
    use base64::Engine;
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some(spki_digest(cert.tbs_certificate.subject_pki.raw))
}

/// The root version 1 the `roots` target walks from: the anchor key signs
/// roots and statements.
pub fn pinned_root() -> pb::Envelope {
    let key = anchor_key();
    sign_root(
        &pb::Root {
            region: ANCHOR_REGION.into(),
            name: "辽宁省".into(),
            version: 1,
            keys: vec![key.public_key().0.to_vec()],
            threshold: 1,
            node_key: key.public_key().0.to_vec(),
            issued_at_ms: 1_767_225_600_000,
            expires_ms: 0,
        },
        &[key],
    )
}

/// Target `roots`: a chain of roots (as `Node.Roots` answers it) walked
/// from a pinned version 1. A walk that succeeds yields consecutive
/// versions, each endorsed as the rules say.
pub fn roots(data: &[u8]) {
    let Ok(offered) = pb::RootsResponse::decode(data) else {
        return;
    };
    for env in &offered.roots {
        let _ = RootView::from_envelope(env);
    }
    let Ok(pinned) = RootView::pinned(&pinned_root()) else {
        return;
    };
    let mut chain = RootChain::of(pinned);
    let _ = chain.walk(&offered.roots, 1_767_225_600_000);
    let versions: Vec<u64> = chain.roots().iter().map(|r| r.version).collect();
    assert!(
        versions.windows(2).all(|w| w[1] == w[0] + 1),
        "a walked chain has consecutive versions: {versions:?}"
    );
    for pair in chain.roots().windows(2) {
        assert!(
            pair[0].next(&pair[1].envelope).is_ok(),
            "each link verifies"
        );
    }
    let _ = chain.node_keys();
}

/// A target's body: any bytes in, a panic only on a bug.
pub type Target = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and the corpus
/// directories `fuzz/corpus/<name>/` call them.
pub const TARGETS: [(&str, Target); 8] = [
    ("envelope", envelope),
    ("dsse_json", dsse_json),
    ("mutated_envelope", mutated_envelope),
    ("rpc_request", rpc_request),
    ("bundle", bundle),
    ("sheet", sheet),
    ("anchors", anchors),
    ("roots", roots),
];
