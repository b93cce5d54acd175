//! What a verdict may say. The bundle's header is not signed: a header
//! claiming a period or region its signed summaries do not cover must not
//! verify, and the months missing are named. A summary without a signature
//! is refused as unsigned, one with several as ambiguous, by the auditor
//! and by the parent alike.

mod tamper_support;

use tallytree_aggregator::{Defect, audit::AuditReport};
use tallytree_proto::{envelope, pb};
use tamper_support::{
    CITY, Federation, OTHER_PERIOD, PERIOD, PROVINCE, STREET, VILLAGE_1, code, month, new_key,
};

/// Every problem of the report, one per line, for failure messages.
fn describe(report: &AuditReport) -> String {
    let mut out: Vec<String> = report
        .general
        .iter()
        .map(|p| format!("general: {p}"))
        .collect();
    for (region, verdict) in &report.regions {
        out.extend(verdict.problems.iter().map(|p| format!("{region}: {p}")));
    }
    out.join("\n")
}

/// Whether one of `region`'s problems contains `needle`.
fn has_problem(report: &AuditReport, region: &str, needle: &str) -> bool {
    report
        .regions
        .get(&code(region))
        .is_some_and(|v| v.problems.iter().any(|p| p.contains(needle)))
}

fn header(fed: &Federation, region: &str, period: &str) -> Option<pb::EvidenceHeader> {
    Some(pb::EvidenceHeader {
        region: region.into(),
        period: period.into(),
        ..fed.header()
    })
}

#[test]
fn a_header_claiming_another_month_does_not_verify() {
    let fed = Federation::build();
    let report = fed.audit_with(header(&fed, PROVINCE, OTHER_PERIOD));
    let all = describe(&report);
    assert!(
        !report.verified(),
        "verified a bundle of {PERIOD} as {OTHER_PERIOD}"
    );
    assert!(
        has_problem(
            &report,
            PROVINCE,
            "summary 210000000000: no verified summary for 2026-02 (1 of the 1 months of the period 2026-02 the bundle's header claims)"
        ),
        "{all}"
    );
    assert!(
        has_problem(
            &report,
            PROVINCE,
            "summary 210000000000 2026-03 revision 1: outside the period 2026-02 the bundle's header claims"
        ),
        "{all}"
    );
    assert!(!report.month_verified(month(PERIOD)));
    assert!(!report.month_verified(month(OTHER_PERIOD)));
    assert_eq!(report.months_missing(code(PROVINCE)), [month(OTHER_PERIOD)]);
}

#[test]
fn a_header_claiming_a_quarter_of_one_month_names_the_months_missing() {
    let fed = Federation::build();
    let report = fed.audit_with(header(&fed, PROVINCE, "2026-Q1"));
    let all = describe(&report);
    assert!(!report.verified(), "{all}");
    assert!(
        has_problem(
            &report,
            PROVINCE,
            "summary 210000000000: no verified summary for 2026-01, 2026-02 (2 of the 3 months of the period 2026-01..2026-03 the bundle's header claims)"
        ),
        "{all}"
    );
    assert_eq!(report.problem_count(), 1, "{all}");
    assert_eq!(
        report.months_missing(code(PROVINCE)),
        [month("2026-01"), month("2026-02")]
    );
    // What was proven is still shown, month by month: March checks out.
    assert!(report.month_verified(month(PERIOD)));
    assert!(!report.month_verified(month("2026-01")));
    assert_eq!(
        report.proven[&code(PROVINCE)][&month(PERIOD)].total,
        fed.view(code(PROVINCE)).total
    );
}

#[test]
fn a_header_claiming_another_region_does_not_verify() {
    let fed = Federation::build();
    // 吉林省: nothing in the bundle is of it.
    let report = fed.audit_with(header(&fed, "220000000000", PERIOD));
    let all = describe(&report);
    assert!(!report.verified(), "{all}");
    assert!(
        has_problem(
            &report,
            "220000000000",
            "summary 220000000000: no verified summary for 2026-03"
        ),
        "{all}"
    );
    assert!(report.proven.is_empty(), "{all}");
    // The province's own summary is then counted by nothing claimed.
    assert!(has_problem(&report, PROVINCE, "(mixed in)"), "{all}");

    // A region inside the bundle, the city: the province above it is not
    // part of what the header claims.
    let report = fed.audit_with(header(&fed, CITY, PERIOD));
    assert!(!report.verified());
    assert!(
        has_problem(&report, PROVINCE, "(mixed in)"),
        "{}",
        describe(&report)
    );
    assert!(report.proven.contains_key(&code(CITY)));
}

#[test]
fn a_bundle_without_a_header_or_with_a_malformed_one_does_not_verify() {
    let fed = Federation::build();
    let report = fed.audit_with(None);
    assert!(!report.verified());
    assert!(
        report
            .general
            .iter()
            .any(|p| p == "bundle: no header naming the region and period it proves"),
        "{}",
        describe(&report)
    );
    let report = fed.audit_with(header(&fed, PROVINCE, "2026-13"));
    assert!(!report.verified());
    assert!(
        report
            .general
            .iter()
            .any(|p| p.starts_with("bundle header: period \"2026-13\"")),
        "{}",
        describe(&report)
    );
    let report = fed.audit_with(header(&fed, "21", PERIOD));
    assert!(
        report
            .general
            .iter()
            .any(|p| p.starts_with("bundle header: region: region code \"21\"")),
        "{}",
        describe(&report)
    );
}

#[test]
fn a_summary_without_a_signature_is_refused_as_unsigned() {
    let mut fed = Federation::build();
    let i = fed.summary_index(code(VILLAGE_1));
    fed.summaries[i].signatures.clear();
    let unsigned = fed.summaries[i].clone();

    let report = fed.audit();
    let all = describe(&report);
    assert!(!report.verified());
    assert!(
        has_problem(&report, VILLAGE_1, "summary for 210214001001: no signature"),
        "{all}"
    );
    assert!(!all.contains("which is not enrolled"), "{all}");
    assert!(
        has_problem(
            &report,
            STREET,
            "child 210214001001 revision 1 did not verify"
        ),
        "{all}"
    );

    // The parent: refused with the same defect, directly and carried
    // below the street's summary.
    let f = fed
        .submit_to(code(STREET), &unsigned)
        .expect_err("unsigned accepted");
    assert!(
        matches!(
            f,
            Defect::Unsigned {
                what: "summary",
                ..
            }
        ),
        "{f}"
    );
    assert_eq!(f.to_string(), "summary for 210214001001: no signature");
    let f = fed
        .submit_to(code(tamper_support::DISTRICT), fed.summary(code(STREET)))
        .expect_err("carried unsigned accepted");
    assert!(matches!(f, Defect::Unsigned { .. }), "{f}");
}

#[test]
fn a_summary_with_two_signatures_is_refused_whichever_comes_first() {
    let fed = Federation::build();
    let v1 = code(VILLAGE_1);
    let env = fed.summary(v1).clone();
    let other = envelope::sign(&new_key(), &env.payload_type, env.payload.clone());
    for order in [[0, 1], [1, 0]] {
        let both = [env.signatures[0].clone(), other.signatures[0].clone()];
        let mut twice = env.clone();
        twice.signatures = order.iter().map(|i| both[*i].clone()).collect();
        let f = fed.submit_to(code(STREET), &twice).expect_err("accepted");
        assert!(
            matches!(f, Defect::ManySignatures { count: 2, .. }),
            "{order:?}: {f}"
        );
        assert!(
            f.to_string().starts_with(
                "summary for 210214001001: 2 signatures; a statement carries exactly one"
            ),
            "{f}"
        );
        let mut fed = Federation::build();
        let i = fed.summary_index(v1);
        let mut twice = fed.summaries[i].clone();
        let extra = envelope::sign(&new_key(), &twice.payload_type, twice.payload.clone());
        twice.signatures.push(extra.signatures[0].clone());
        if order[0] == 1 {
            twice.signatures.reverse();
        }
        fed.summaries[i] = twice;
        let report = fed.audit();
        assert!(
            has_problem(&report, VILLAGE_1, "2 signatures"),
            "{}",
            describe(&report)
        );
    }
}
