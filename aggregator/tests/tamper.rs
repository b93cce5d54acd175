//! The tamper matrix (issue 4, item 5): a small federation validly signed
//! with real keys, then one test per way of cheating. Each tampered bundle
//! must fail `Auditor` (the code behind `tallytree audit verify`) with the
//! right defect attached to the right region and its 辽宁省 › … path; where
//! the parent can see the cheat when the summary is submitted, the parent's
//! own checks (`Trust` and `verify_tree`) must refuse it too.

mod tamper_support;

use prost::Message;
use tallytree_aggregator::{
    ChildEntry, Defect, Mismatch, SummaryError, Tally, Trust, Verified,
    audit::{AuditReport, verify_proof},
    bundle::{BundleError, BundleReader, BundleWriter},
    root::Pinned,
};
use tallytree_proto::{Category, Digest, envelope, pb, statement};
use tamper_support::{
    CITY, DISTRICT, Federation, OTHER_PERIOD, PERIOD, PROVINCE, STREET, VILLAGE_1, VILLAGE_2,
    VILLAGE_3, audit_bytes, code, month, new_key, tally,
};

/// Path of the first village, as the report prints it.
const VILLAGE_1_PATH: &str = "辽宁省 › 大连市 › 普兰店区 › 铁西街道 › 东风村";
/// Path of the second village.
const VILLAGE_2_PATH: &str = "辽宁省 › 大连市 › 普兰店区 › 铁西街道 › 前进村";
/// Path of the street.
const STREET_PATH: &str = "辽宁省 › 大连市 › 普兰店区 › 铁西街道";
/// Path of the district.
const DISTRICT_PATH: &str = "辽宁省 › 大连市 › 普兰店区";

/// Every problem of the report, one per line, for failure messages.
fn describe(report: &AuditReport) -> String {
    let mut out = String::new();
    for p in &report.general {
        out.push_str(&format!("general: {p}\n"));
    }
    for (region, verdict) in &report.regions {
        for p in &verdict.problems {
            out.push_str(&format!("{region} ({}): {p}\n", report.path(*region)));
        }
    }
    out
}

/// The problems attached to `region`.
fn problems(report: &AuditReport, region: &str) -> Vec<String> {
    report
        .regions
        .get(&code(region))
        .map(|v| v.problems.clone())
        .unwrap_or_default()
}

/// Asserts the bundle is not verified, that one of `region`'s problems
/// contains every one of `needles`, and that the region's path is `path`.
fn assert_finding(report: &AuditReport, region: &str, path: &str, needles: &[&str]) {
    let all = describe(report);
    assert!(!report.verified(), "tampered bundle verified");
    let found = problems(report, region)
        .iter()
        .any(|p| needles.iter().all(|n| p.contains(n)));
    assert!(
        found,
        "no problem of {region} with {needles:?}; report:\n{all}"
    );
    assert_eq!(report.path(code(region)), path, "report:\n{all}");
}

/// Asserts no region but those in `allowed` has a problem, and nothing is
/// reported outside regions, so a defect is not drowned in noise.
fn assert_only(report: &AuditReport, allowed: &[&str]) {
    let all = describe(report);
    assert!(report.general.is_empty(), "general problems:\n{all}");
    for (region, verdict) in &report.regions {
        if !verdict.problems.is_empty() {
            assert!(
                allowed.contains(&region.to_string().as_str()),
                "unexpected problems at {region}:\n{all}"
            );
        }
    }
}

/// The message of the defect a parent's submission checks return.
fn refused(result: Result<Verified<'_>, Defect>) -> Defect {
    match result {
        Ok(v) => panic!("accepted {} revision {}", v.view.region, v.view.revision),
        Err(f) => f,
    }
}

/// The envelope with its payload changed after signing, signatures kept:
/// what a figure edited in a file or in transit produces.
fn edit_payload(env: &pb::Envelope, edit: impl FnOnce(&mut pb::Summary)) -> pb::Envelope {
    let mut summary: pb::Summary = statement::peek_unverified(env).expect("summary");
    edit(&mut summary);
    pb::Envelope {
        payload: summary.encode_to_vec(),
        ..env.clone()
    }
}

#[test]
fn the_untampered_bundle_verifies() {
    let fed = Federation::build();
    let report = fed.audit();
    assert!(report.verified(), "problems:\n{}", describe(&report));
    assert_eq!(report.problem_count(), 0);
    assert_eq!(
        (report.summaries, report.enrolments, report.receipts),
        (6, 5, 5)
    );
    let province = fed.view(code(PROVINCE));
    let proven = &report.proven[&code(PROVINCE)];
    assert_eq!(proven.keys().copied().collect::<Vec<_>>(), [month(PERIOD)]);
    assert_eq!(proven[&month(PERIOD)].total, province.total);
    assert!(report.month_verified(month(PERIOD)));
    // The province's total is every unit's local tally, summed.
    let sum = (0..6).try_fold(Tally::default(), |acc, seed| acc.checked_add(&tally(seed)));
    assert_eq!(Some(province.total), sum);
    for (region, path) in [
        (VILLAGE_1, VILLAGE_1_PATH),
        (VILLAGE_2, VILLAGE_2_PATH),
        (STREET, STREET_PATH),
        (DISTRICT, DISTRICT_PATH),
    ] {
        let verdict = &report.regions[&code(region)];
        assert_eq!(verdict.summaries, 1, "{region}");
        assert_eq!(verdict.reported, verdict.expected, "{region}");
        assert_eq!(report.path(code(region)), path);
    }
    assert_eq!(report.regions[&code(STREET)].expected, 2);
}

#[test]
fn every_unit_is_accepted_by_its_parent_at_submission() {
    let fed = Federation::build();
    for unit in [CITY, DISTRICT, STREET, VILLAGE_1, VILLAGE_2] {
        let region = code(unit);
        let parent = region.parent().expect("parent");
        let verified = fed
            .submit_to(parent, fed.summary(region))
            .unwrap_or_else(|f| panic!("{unit} refused by {parent}: {f}"));
        assert_eq!(verified.view.region, region);
        assert_eq!(verified.digest, Digest::of(&fed.summary(region).payload));
    }
    // The city's submission carries and verifies every summary below it.
    let verified = fed
        .submit_to(code(PROVINCE), fed.summary(code(CITY)))
        .expect("accepted");
    assert_eq!(verified.descendants.len(), 4);
}

/// (1) A count changed inside a signed village summary, not re-signed.
#[test]
fn a_count_changed_inside_a_signed_village_summary() {
    let mut fed = Federation::build();
    let v1 = code(VILLAGE_1);
    let i = fed.summary_index(v1);
    let tampered = edit_payload(&fed.summaries[i], |s| {
        let land = &mut s.total.as_mut().expect("total").cases[0];
        assert_eq!(land.category, Category::Land.to_pb() as i32);
        land.registered += 5;
        land.resolved += 5;
    });
    fed.summaries[i] = tampered.clone();

    let report = fed.audit();
    assert_finding(
        &report,
        VILLAGE_1,
        VILLAGE_1_PATH,
        &["summary for 210214001001", "does not verify"],
    );
    // The street counted the village's signed summary; it reports the child
    // whose signature broke as one that did not verify.
    assert_finding(
        &report,
        STREET,
        STREET_PATH,
        &["child 210214001001 revision 1", "did not verify"],
    );
    assert_only(&report, &[VILLAGE_1, STREET]);

    // At submission: the street refuses the altered summary; the district
    // refuses the street's summary carrying it.
    for (parent, env) in [
        (STREET, tampered),
        (DISTRICT, fed.summary(code(STREET)).clone()),
    ] {
        let f = refused(fed.submit_to(code(parent), &env));
        assert!(
            matches!(
                &f,
                Defect::Envelope { region, source: envelope::EnvelopeError::BadSignature(_), .. }
                    if region == VILLAGE_1
            ),
            "{parent}: {f}"
        );
    }
}

/// (1b) The signature bytes of a village summary altered, payload intact.
#[test]
fn a_village_signature_altered() {
    let mut fed = Federation::build();
    let i = fed.summary_index(code(VILLAGE_1));
    fed.summaries[i].signatures[0].sig[10] ^= 0x40;
    let report = fed.audit();
    assert_finding(
        &report,
        VILLAGE_1,
        VILLAGE_1_PATH,
        &["summary for 210214001001", "does not verify"],
    );
    assert_finding(
        &report,
        STREET,
        STREET_PATH,
        &["child 210214001001 revision 1 did not verify"],
    );
    assert_only(&report, &[VILLAGE_1, STREET]);
}

/// A parent whose roll-up counts a child's receipted revision, by the
/// receipted digest, does not leave it out: when that child's summary fails
/// to verify, the parent must not also be accused of suppression.
#[test]
fn a_child_that_does_not_verify_is_not_called_suppressed() {
    let mut fed = Federation::build();
    let i = fed.summary_index(code(VILLAGE_1));
    fed.summaries[i].signatures[0].sig[10] ^= 0x40;
    let report = fed.audit();
    assert!(!report.verified());
    let street = problems(&report, STREET);
    assert!(
        !street.iter().any(|p| p.contains("suppression")),
        "the street counts 210214001001 revision 1 with the receipted digest, yet:\n{}",
        describe(&report)
    );
}

/// (2) A district roll-up re-signed with one village's figure changed: the
/// total no longer equals local + the child totals.
#[test]
fn a_district_rollup_resigned_with_a_village_figure_changed() {
    let mut fed = Federation::build();
    let district = code(DISTRICT);
    let before = fed.view(district).total.category(Category::Land).registered;
    fed.reissue_as_is(district, |v| {
        let land = v.total.category_mut(Category::Land);
        land.registered += 3;
        land.resolved += 3;
        land.resolved_on_time += 3;
    });
    let report = fed.audit();
    let detail = format!("land.registered is {}, the sum is {before}", before + 3);
    assert_finding(
        &report,
        DISTRICT,
        DISTRICT_PATH,
        &[
            "summary 210214000000 2026-03: total != local + sum of 1 child totals",
            &detail,
        ],
    );
    assert_only(&report, &[DISTRICT]);

    // The city refuses it at submission.
    let f = refused(fed.submit_to(code(CITY), fed.summary(district)));
    assert!(
        matches!(&f, Defect::Summary(SummaryError::Total { region, .. }) if *region == district),
        "{f}"
    );
    assert!(f.to_string().contains(&detail), "{f}");
}

/// (3) A village dropped from the street's roll-up while the street's
/// receipt for it is in the bundle: suppression.
#[test]
fn a_village_dropped_from_a_rollup_while_its_receipt_exists() {
    let mut fed = Federation::build();
    let v2 = code(VILLAGE_2);
    let receipt = fed.receipt_of(v2);
    fed.reissue(code(STREET), |v| v.children.retain(|c| c.region != v2));
    fed.remove_summary(v2);
    fed.receipts.push(receipt);

    let report = fed.audit();
    assert_finding(
        &report,
        STREET,
        STREET_PATH,
        &[
            "summary 210214001000 2026-03: leaves out 210214001002",
            "receipt for its revision 1 (suppression)",
        ],
    );
    assert_only(&report, &[STREET]);
    assert_eq!(report.regions[&code(STREET)].reported, 1);
}

/// (4) A village invented: no enrolment, its summary signed by a key nobody
/// enrolled, counted by a re-signed street summary.
#[test]
fn a_village_invented() {
    let mut fed = Federation::build();
    let v3 = code(VILLAGE_3);
    let rogue = new_key();
    let mut view = fed.view(code(VILLAGE_1));
    view.region = v3;
    view.name = "新村".into();
    view.local = tally(40);
    view.total = tally(40);
    let invented = statement::seal(&rogue, &view.to_pb()).envelope;
    let digest = Digest::of(&invented.payload);
    fed.insert_summary_before(code(STREET), invented.clone());
    fed.reissue(code(STREET), |v| {
        v.children.push(ChildEntry {
            region: v3,
            revision: 1,
            digest,
        });
        v.children_expected = 3;
    });

    let report = fed.audit();
    let key_id = rogue.public_key().key_id();
    assert_finding(
        &report,
        VILLAGE_3,
        "辽宁省 › 大连市 › 普兰店区 › 铁西街道 › 210214001003",
        &["signed by key", &key_id, "which is not enrolled"],
    );
    assert_finding(
        &report,
        STREET,
        STREET_PATH,
        &["child 210214001003 revision 1 did not verify"],
    );
    assert_finding(
        &report,
        STREET,
        STREET_PATH,
        &["children_expected is 3 but 2 children are enrolled"],
    );
    assert_only(&report, &[VILLAGE_3, STREET]);

    // The street refuses the invented village; the district refuses the
    // street's summary that counts it.
    for parent in [STREET, DISTRICT] {
        let env = if parent == STREET {
            invented.clone()
        } else {
            fed.summary(code(STREET)).clone()
        };
        let f = refused(fed.submit_to(code(parent), &env));
        assert!(
            matches!(&f, Defect::UnknownKey { key_id: k, .. } if *k == key_id),
            "{parent}: {f}"
        );
    }
}

/// (5) A village's summary signed by a key nobody enrolled.
#[test]
fn a_summary_signed_by_an_unenrolled_key() {
    let mut fed = Federation::build();
    let v1 = code(VILLAGE_1);
    let rogue = new_key();
    let i = fed.summary_index(v1);
    // The very payload the street counted, signed by another key.
    let forged = envelope::sign(
        &rogue,
        &fed.summaries[i].payload_type,
        fed.summaries[i].payload.clone(),
    );
    fed.summaries[i] = forged.clone();

    let report = fed.audit();
    let key_id = rogue.public_key().key_id();
    assert_finding(
        &report,
        VILLAGE_1,
        VILLAGE_1_PATH,
        &["signed by key", &key_id, "which is not enrolled"],
    );
    assert_finding(
        &report,
        STREET,
        STREET_PATH,
        &["child 210214001001 revision 1 did not verify"],
    );
    assert_only(&report, &[VILLAGE_1, STREET]);

    let f = refused(fed.submit_to(code(STREET), &forged));
    assert!(
        matches!(&f, Defect::UnknownKey { key_id: k, .. } if *k == key_id),
        "{f}"
    );
}

/// (5b) A village's summary signed by its sibling's enrolled key.
#[test]
fn a_summary_signed_by_another_units_key() {
    let mut fed = Federation::build();
    let i = fed.summary_index(code(VILLAGE_1));
    let forged = envelope::sign(
        fed.key(code(VILLAGE_2)),
        &fed.summaries[i].payload_type,
        fed.summaries[i].payload.clone(),
    );
    fed.summaries[i] = forged.clone();
    let report = fed.audit();
    assert_finding(
        &report,
        VILLAGE_1,
        VILLAGE_1_PATH,
        &["signed by the key enrolled for 210214001002"],
    );
    let f = refused(fed.submit_to(code(STREET), &forged));
    assert!(matches!(f, Defect::WrongSigner { .. }), "{f}");
}

/// The revocation the street signs for the second village's key.
fn revoke_village_2(fed: &mut Federation, revoked_at_ms: i64) {
    let v2 = code(VILLAGE_2);
    let revocation = pb::Revocation {
        parent: STREET.into(),
        region: VILLAGE_2.into(),
        public_key: fed.key(v2).public_key().0.to_vec(),
        revoked_at_ms,
        reason: "key left on a lost laptop".into(),
    };
    let env = statement::seal(fed.key(code(STREET)), &revocation).envelope;
    fed.revocations.push(env);
}

/// (6) A summary signed by a revoked key after its revocation.
#[test]
fn a_summary_signed_by_a_revoked_key_after_revocation() {
    let mut fed = Federation::build();
    let v2 = code(VILLAGE_2);
    let issued = fed.view(v2).issued_at_ms;
    revoke_village_2(&mut fed, issued - 60_000);

    let report = fed.audit();
    let key_id = fed.key(v2).public_key().key_id();
    let rule = format!(
        "summary 210214001002: signed by key {key_id} revoked at {} (issued {issued})",
        issued - 60_000
    );
    assert_finding(&report, VILLAGE_2, VILLAGE_2_PATH, &[&rule]);
    assert_finding(
        &report,
        STREET,
        STREET_PATH,
        &["child 210214001002 revision 1 did not verify"],
    );
    assert_only(&report, &[VILLAGE_2, STREET]);

    let f = refused(fed.submit_to(code(STREET), fed.summary(v2)));
    assert!(matches!(f, Defect::Revoked { .. }), "{f}");
    assert_eq!(f.to_string(), rule);
}

/// (6, control) What a key signed before its revocation still counts.
#[test]
fn a_summary_signed_before_the_revocation_still_verifies() {
    let mut fed = Federation::build();
    let v2 = code(VILLAGE_2);
    let issued = fed.view(v2).issued_at_ms;
    revoke_village_2(&mut fed, issued + 1);
    let report = fed.audit();
    assert!(report.verified(), "{}", describe(&report));
    fed.submit_to(code(STREET), fed.summary(v2))
        .expect("signed before the revocation");
}

/// (7) An enrolment signed by someone other than the parent: the district
/// (the grandparent), the sibling village, or a key nobody enrolled.
#[test]
fn an_enrolment_signed_by_someone_other_than_the_parent() {
    let v1 = code(VILLAGE_1);
    // Its name comes from the enrolment that no longer verifies.
    let unnamed_village_1 = format!("{STREET_PATH} › {VILLAGE_1}");
    for signer in ["district", "sibling", "stranger"] {
        let mut fed = Federation::build();
        let stranger = new_key();
        let key = match signer {
            "district" => fed.key(code(DISTRICT)),
            "sibling" => fed.key(code(VILLAGE_2)),
            _ => &stranger,
        };
        let enrolment = fed.enrolment(v1, &fed.key(v1).public_key());
        let env = statement::seal(key, &enrolment).envelope;
        let key_id = key.public_key().key_id();
        let i = fed.enrolment_index(v1);
        fed.enrolments[i] = env.clone();

        let report = fed.audit();
        match signer {
            "district" => assert_finding(
                &report,
                VILLAGE_1,
                &unnamed_village_1,
                &[
                    "enrolment 210214001001: names parent 210214001000 but is signed by 210214000000",
                ],
            ),
            "sibling" => assert_finding(
                &report,
                VILLAGE_1,
                &unnamed_village_1,
                &[
                    "enrolment 210214001001: names parent 210214001000 but is signed by 210214001002",
                ],
            ),
            _ => {
                // A key that is not trusted when the villages' level is
                // admitted (the sibling's own enrolment is checked in the
                // same round): nothing says which region the enrolment is
                // about until it verifies, so the defect is a general one.
                let all = describe(&report);
                assert!(
                    report.general.iter().any(|p| p.contains("signed by key")
                        && p.contains(&key_id)
                        && p.contains("which is not enrolled")),
                    "{signer}: {all}"
                );
            }
        }
        // Without a valid enrolment the village's key speaks for no one.
        assert_finding(
            &report,
            VILLAGE_1,
            &unnamed_village_1,
            &["signed by key", "which is not enrolled"],
        );
        assert_finding(
            &report,
            STREET,
            STREET_PATH,
            &["children_expected is 2 but 1 children are enrolled"],
        );

        // The district refuses the enrolment when the street forwards it.
        let mut trust = Trust::with_anchor(code(DISTRICT), fed.key(code(DISTRICT)).public_key());
        trust
            .admit_enrolment(&fed.enrolments[fed.enrolment_index(code(STREET))])
            .expect("the street's own enrolment");
        let f = trust.admit_enrolment(&env).expect_err(signer);
        assert!(
            matches!(f, Defect::Tree { .. } | Defect::UnknownKey { .. }),
            "{signer}: {f}"
        );
    }
}

/// (8) Two different summaries with the same revision: the street gave a
/// receipt for revision 1 with one digest and counts revision 1 with another.
#[test]
fn two_different_summaries_with_the_same_revision() {
    let mut fed = Federation::build();
    let v1 = code(VILLAGE_1);
    let receipt = fed.receipt_of(v1);
    fed.reissue(v1, |v| {
        v.revision = 1;
        v.local = tally(30);
    });
    fed.set_receipt(v1, receipt);

    let report = fed.audit();
    assert_finding(
        &report,
        STREET,
        STREET_PATH,
        &[
            "summary 210214001000 2026-03: counts 210214001001 revision 1 with another digest",
            "(equivocation)",
        ],
    );
    assert_only(&report, &[STREET]);
}

/// (9) An older revision passed off as the latest: the street counts the
/// village's revision 1 though it gave a receipt for revision 2.
#[test]
fn an_older_revision_passed_off_as_the_latest() {
    let mut fed = Federation::build();
    let v1 = code(VILLAGE_1);
    let mut newer = fed.view(v1);
    newer.revision = 2;
    newer.issued_at_ms += 3_600_000;
    newer.local = tally(9);
    newer.total = tally(9);
    let env = fed.seal_summary(&newer);
    let receipt = fed.receipt(&newer, Digest::of(&env.payload));
    fed.receipts.push(receipt);

    let report = fed.audit();
    assert_finding(
        &report,
        STREET,
        STREET_PATH,
        &[
            "summary 210214001000 2026-03: counts 210214001001 revision 1",
            "gave a receipt for revision 2 (an older revision passed off as the latest)",
        ],
    );
    assert_only(&report, &[STREET]);
}

/// The first village's summary for [`OTHER_PERIOD`].
fn other_period_summary(fed: &Federation) -> pb::Envelope {
    let mut view = fed.view(code(VILLAGE_1));
    view.period = month(OTHER_PERIOD);
    view.issued_at_ms -= 20 * 86_400_000;
    view.local = tally(2);
    view.total = tally(2);
    fed.seal_summary(&view)
}

/// (10a) The street's March roll-up counts the village's February summary.
#[test]
fn a_child_summary_of_another_period_counted() {
    let mut fed = Federation::build();
    let v1 = code(VILLAGE_1);
    let february = other_period_summary(&fed);
    let digest = Digest::of(&february.payload);
    fed.remove_summary(v1);
    fed.insert_summary_before(code(VILLAGE_2), february);
    fed.reissue(code(STREET), |v| {
        v.children[0].digest = digest;
        v.children[0].revision = 1;
    });

    let report = fed.audit();
    assert_finding(
        &report,
        STREET,
        STREET_PATH,
        &[
            "summary 210214001000 2026-03: child 210214001001 is a summary of another period (2026-02)",
        ],
    );
    assert_only(&report, &[STREET]);

    let f = refused(fed.submit_to(code(DISTRICT), fed.summary(code(STREET))));
    assert!(
        matches!(
            f,
            Defect::ChildMismatch {
                mismatch: Mismatch::Period { .. },
                ..
            }
        ),
        "{f}"
    );
}

/// (10b) A summary of another period, counted by nothing, mixed into the
/// bundle.
#[test]
fn a_summary_of_another_period_mixed_in() {
    let mut fed = Federation::build();
    let february = other_period_summary(&fed);
    fed.insert_summary_before(code(STREET), february);
    let report = fed.audit();
    assert_finding(
        &report,
        VILLAGE_1,
        VILLAGE_1_PATH,
        &[
            "summary 210214001001 2026-02 revision 1: in the bundle but counted by no summary above it (mixed in)",
        ],
    );
    assert_only(&report, &[VILLAGE_1]);
}

/// (11) A truncated bundle file: every cut is detected as truncation.
#[test]
fn a_truncated_bundle_file() {
    let fed = Federation::build();
    let bytes = fed.bundle();
    for len in 0..bytes.len() {
        let err = BundleReader::new(&bytes[..len])
            .find_map(Result::err)
            .unwrap_or_else(|| panic!("cut at {len} of {} read as complete", bytes.len()));
        assert!(
            matches!(err, BundleError::Truncated(_)),
            "cut at {len}: {err}"
        );
    }
    let mut extra = bytes.clone();
    extra.extend_from_slice(&bytes[..3]);
    let err = BundleReader::new(extra.as_slice())
        .find_map(Result::err)
        .expect("data after the trailer");
    assert!(
        matches!(&err, BundleError::Trailer(m) if m.contains("data after the trailer")),
        "{err}"
    );
}

/// (11) A corrupted bundle file: a flipped bit anywhere is detected; one in
/// a signature (which still decodes) by the trailer's digest.
#[test]
fn a_corrupted_bundle_file() {
    let fed = Federation::build();
    let bytes = fed.bundle();
    for i in 0..bytes.len() {
        for bit in [0x01, 0x80] {
            let mut bad = bytes.clone();
            bad[i] ^= bit;
            assert!(
                BundleReader::new(bad.as_slice()).any(|r| r.is_err()),
                "bit {bit:#x} of byte {i} flipped unnoticed"
            );
        }
    }
    let sig = &fed.summary(code(STREET)).signatures[0].sig;
    let at = bytes
        .windows(sig.len())
        .position(|w| w == sig.as_slice())
        .expect("signature in the file");
    let mut bad = bytes.clone();
    bad[at + 5] ^= 0x10;
    let err = BundleReader::new(bad.as_slice())
        .find_map(Result::err)
        .expect("detected");
    assert!(
        matches!(&err, BundleError::Trailer(m) if m.contains("digest does not match")),
        "{err}"
    );
    // The bytes are still readable up to the trailer, and the auditor that
    // ignored the trailer would catch the broken signature as well.
    let items: Vec<pb::EvidenceItem> = BundleReader::new(bad.as_slice())
        .filter_map(Result::ok)
        .collect();
    let mut w = BundleWriter::new(Vec::new());
    for item in &items {
        w.write(item).expect("write");
    }
    let rewritten = w.finish().expect("finish");
    let report = audit_bytes(&rewritten, fed.anchor());
    assert_finding(
        &report,
        STREET,
        STREET_PATH,
        &["summary for 210214001000", "does not verify"],
    );
}

/// A bundle verified against another province key: nothing chains to it.
#[test]
fn a_bundle_checked_against_the_wrong_anchor() {
    let fed = Federation::build();
    let report = audit_bytes(&fed.bundle(), (code(PROVINCE), new_key().public_key()));
    assert!(!report.verified());
    assert!(
        report
            .general
            .iter()
            .any(|p| p.contains("signed by key") && p.contains("not enrolled")),
        "{}",
        describe(&report)
    );
}

/// The inclusion proof of `unit` as `Audit.Prove` streams it: header, the
/// enrolments on the path and of the children enrolled under it (for each
/// link's completeness), then the unit's summary and each ancestor's.
fn proof(fed: &Federation, unit: &str, summaries: &[pb::Envelope]) -> Vec<pb::EvidenceItem> {
    use pb::evidence_item::Item;
    let path: Vec<_> = code(unit).ancestry().collect();
    let mut items = vec![pb::EvidenceItem {
        item: Some(Item::Header(pb::EvidenceHeader {
            format: "tallytree-evidence-v1".into(),
            region: unit.into(),
            period: PERIOD.into(),
            exported_by: PROVINCE.into(),
            ..Default::default()
        })),
    }];
    for env in &fed.enrolments {
        let e: pb::Enrolment = statement::peek_unverified(env).expect("enrolment");
        if path.contains(&code(&e.region)) || path.contains(&code(&e.parent)) {
            items.push(pb::EvidenceItem {
                item: Some(Item::Enrolment(env.clone())),
            });
        }
    }
    for env in summaries {
        items.push(pb::EvidenceItem {
            item: Some(Item::Summary(env.clone())),
        });
    }
    // Through a file and back, as `audit prove` and `verify-proof` do.
    let mut w = BundleWriter::new(Vec::new());
    for item in &items {
        w.write(item).expect("write");
    }
    let bytes = w.finish().expect("finish");
    BundleReader::new(bytes.as_slice())
        .collect::<Result<_, _>>()
        .expect("readable")
}

/// The chain village → street → district → city → province.
fn chain(fed: &Federation) -> Vec<pb::Envelope> {
    code(VILLAGE_1)
        .ancestry()
        .map(|r| fed.summary(r).clone())
        .collect()
}

#[test]
fn an_inclusion_proof_verifies_and_a_broken_link_fails() {
    let mut fed = Federation::build();
    let anchors = Pinned::Keys(vec![fed.anchor()]);
    let p = verify_proof(proof(&fed, VILLAGE_1, &chain(&fed)), &anchors, 0).expect("verifies");
    assert_eq!(p.unit.region, code(VILLAGE_1));
    assert_eq!(p.unit.total, fed.view(code(VILLAGE_1)).total);
    let regions: Vec<String> = p.chain.iter().map(|v| v.region.to_string()).collect();
    assert_eq!(regions, [STREET, DISTRICT, CITY, PROVINCE]);

    // A link missing: the district does not count the village.
    let mut links = chain(&fed);
    links.remove(1);
    let err = verify_proof(proof(&fed, VILLAGE_1, &links), &anchors, 0).expect_err("no street");
    assert!(
        err.contains("summary 210214000000 2026-03: does not count 210214001001"),
        "{err}"
    );

    // The chain stops below the anchor.
    let mut links = chain(&fed);
    links.pop();
    let err = verify_proof(proof(&fed, VILLAGE_1, &links), &anchors, 0).expect_err("no province");
    assert!(
        err.contains("which is not a trust anchor's region"),
        "{err}"
    );

    // The village's figures altered after signing.
    let mut links = chain(&fed);
    links[0] = edit_payload(&links[0], |s| {
        s.local.as_mut().expect("local").cases[0].registered += 1
    });
    let err = verify_proof(proof(&fed, VILLAGE_1, &links), &anchors, 0).expect_err("altered");
    assert!(err.contains("does not verify"), "{err}");

    // Checked against another anchor, nothing chains.
    let other = Pinned::Keys(vec![(code(PROVINCE), new_key().public_key())]);
    let err = verify_proof(proof(&fed, VILLAGE_1, &chain(&fed)), &other, 0).expect_err("anchor");
    assert!(err.contains("not enrolled"), "{err}");

    // A link that counts another revision: the street's revision 1 proven
    // against a district that now counts the street's revision 2.
    let old_street = fed.summary(code(STREET)).clone();
    fed.reissue(code(STREET), |v| v.local = tally(11));
    let mut links = chain(&fed);
    links[1] = old_street;
    let err = verify_proof(proof(&fed, VILLAGE_1, &links), &anchors, 0).expect_err("stale link");
    assert!(
        err.contains(
            "summary 210214000000 2026-03: child 210214001000 revision 2 does not match its reference (digest differs)"
        ),
        "{err}"
    );
    // The current chain verifies again.
    verify_proof(proof(&fed, VILLAGE_1, &chain(&fed)), &anchors, 0).expect("verifies");
}

/// Enrolments verify in any order: a bundle listing children before their
/// parents is held back until the parents are in, not refused.
#[test]
fn enrolments_listed_children_first_still_verify() {
    let mut fed = Federation::build();
    fed.enrolments.reverse();
    let report = fed.audit();
    assert!(report.verified(), "{}", describe(&report));
    assert_eq!(report.enrolments, fed.enrolments.len() as u64);
}

/// A street whose own enrolment does not verify: the villages it enrolled
/// are not trusted either, though the street's key signed their enrolments
/// (the auditor checks them while the street's is still being verified, and
/// admits them only once it is).
#[test]
fn villages_enrolled_by_a_street_whose_enrolment_fails_are_not_trusted() {
    let mut fed = Federation::build();
    let i = fed.enrolment_index(code(STREET));
    fed.enrolments[i].signatures[0].sig[0] ^= 1;
    let report = fed.audit();
    let all = describe(&report);
    assert!(!report.verified());
    assert!(
        all.contains("enrolment for 210214000000: signatures: signature by key"),
        "{all}"
    );
    for village in [VILLAGE_1, VILLAGE_2] {
        assert!(
            all.contains(&format!("enrolment for {village}: signed by key"))
                && all.contains("which is not enrolled"),
            "{village} trusted:\n{all}"
        );
    }
}
