//! What `audit verify` and `audit verify-proof` print: the proven figures
//! of the top regions (and with `--all` of every region) in the tables of
//! `tallytree query`, the problems by place in the tree, the verdict line,
//! and the same as JSON. Everything shown comes from the auditor's report,
//! which holds only what signed summaries proved.

use serde_json::{Value, json};
use tallytree_aggregator::{
    Tally,
    audit::{AuditReport, ProofReport},
};
use tallytree_proto::RegionCode;

use crate::{
    query::{MonthRow, RegionRow, months_table, regions_table, tally_json},
    table::Table,
};

/// The regions whose figures a verdict is about: the claimed region, or
/// (a bundle naming none) every top with verified figures.
fn tops(r: &AuditReport) -> Vec<RegionCode> {
    match r.claim.and_then(|c| c.region) {
        Some(top) => vec![top],
        None => r.proven.keys().copied().collect(),
    }
}

/// What was proven of one top: its verified months, their sum, the months
/// missing, and whether all of it verified.
struct Proven {
    region: RegionCode,
    months: Vec<MonthRow>,
    total: Tally,
    missing: Vec<String>,
    verified: bool,
}

fn proven(r: &AuditReport, top: RegionCode) -> Proven {
    let months: Vec<MonthRow> = r
        .proven
        .get(&top)
        .into_iter()
        .flatten()
        .map(|(m, f)| MonthRow {
            period: m.to_string(),
            total: f.total,
            revision: f.revision,
            digest: f.digest.to_hex(),
            verified: r.month_verified(*m),
        })
        .collect();
    let total = months
        .iter()
        .try_fold(Tally::default(), |sum, m| sum.checked_add(&m.total))
        .unwrap_or_default();
    let missing: Vec<String> = r
        .months_missing(top)
        .iter()
        .map(|m| m.to_string())
        .collect();
    let verified = missing.is_empty() && months.iter().all(|m| m.verified);
    Proven {
        region: top,
        months,
        total,
        missing,
        verified,
    }
}

fn claimed_period(r: &AuditReport) -> String {
    r.claim
        .map(|c| c.period.to_string())
        .unwrap_or_else(|| "(no period)".into())
}

/// Every region's figures over the period, top-down, for `--all`.
fn region_rows(r: &AuditReport) -> Vec<RegionRow> {
    let top_level = r
        .regions
        .keys()
        .map(|c| c.level() as u32)
        .min()
        .unwrap_or(0);
    r.regions
        .iter()
        .map(|(code, v)| RegionRow {
            name: r.name(*code),
            code: code.to_string(),
            depth: code.level() as u32 - top_level,
            total: v.total,
            children_reported: v.reported,
            children_expected: v.expected,
            verified: v.problems.is_empty(),
        })
        .collect()
}

fn print_table(title: &str, table: &Table) {
    println!("{title}");
    println!("{}", table.render());
}

pub(super) fn print_report(r: &AuditReport, all: bool) {
    if let Some(h) = &r.header {
        let region = if h.region.is_empty() {
            "(none: the anchors' regions)"
        } else {
            &h.region
        };
        println!(
            "the header claims region {region}, period {}, exported by {} (unsigned; checked against the signed summaries)",
            h.period, h.exported_by
        );
    }
    println!(
        "{} summaries, {} enrolments, {} receipts",
        r.summaries, r.enrolments, r.receipts
    );
    for p in &r.general {
        println!("✗ {p}");
    }
    for (code, v) in r.regions.iter().filter(|(_, v)| !v.problems.is_empty()) {
        println!(
            "✗ {} ({code}) · {} summaries · children {}/{}",
            r.path(*code),
            v.summaries,
            v.reported,
            v.expected
        );
        for p in &v.problems {
            println!("    {p}");
        }
    }
    println!();
    let period = claimed_period(r);
    for top in tops(r) {
        let p = proven(r, top);
        let what = if p.verified {
            "verified figures"
        } else {
            "signed figures, NOT verified"
        };
        let mut title = format!(
            "{what}: {} ({top}, {}) · {period}",
            r.name(top),
            top.level().label()
        );
        if !p.missing.is_empty() {
            title.push_str(&format!(
                " · no verified summary for {}",
                p.missing.join(", ")
            ));
        }
        print_table(&title, &months_table(&p.months, &p.total));
    }
    if all {
        print_table(
            &format!("every region · {period} (上报/应报 summed over the months)"),
            &regions_table(&region_rows(r)),
        );
    }
    if r.verified() {
        let names: Vec<String> = tops(r)
            .into_iter()
            .map(|t| format!("{} ({t})", r.name(t)))
            .collect();
        println!(
            "VERIFIED: {} {period}: every signature, enrolment chain, total, completeness count and receipt checks out",
            names.join(", ")
        );
    } else {
        let n = r.problem_count();
        println!(
            "NOT VERIFIED: {n} {}",
            if n == 1 { "problem" } else { "problems" }
        );
    }
}

pub(super) fn report_json(r: &AuditReport, all: bool) -> Value {
    let period = claimed_period(r);
    let proven: Vec<Value> = tops(r)
        .into_iter()
        .map(|top| {
            let p = proven(r, top);
            let months: Vec<Value> = p
                .months
                .iter()
                .map(|m| {
                    json!({
                        "period": m.period,
                        "revision": m.revision,
                        "digest": m.digest,
                        "verified": m.verified,
                        "total": tally_json(&m.total),
                    })
                })
                .collect();
            json!({
                "region": p.region.to_string(),
                "name": r.name(p.region),
                "level": p.region.level().as_str(),
                "period": period,
                "verified": p.verified,
                "months": months,
                "months_missing": p.missing,
                "total": tally_json(&p.total),
            })
        })
        .collect();
    let regions: Vec<_> = r
        .regions
        .iter()
        .filter(|(_, v)| all || !v.problems.is_empty())
        .map(|(code, v)| {
            let mut region = json!({
                "region": code.to_string(),
                "name": r.name(*code),
                "path": r.path(*code),
                "summaries": v.summaries,
                "children_reported": v.reported,
                "children_expected": v.expected,
                "verified": v.problems.is_empty(),
                "problems": v.problems,
            });
            if all {
                region["total"] = tally_json(&v.total);
            }
            region
        })
        .collect();
    json!({
        "verified": r.verified(),
        "header": r.header.as_ref().map(|h| json!({"region": h.region, "period": h.period, "exported_by": h.exported_by, "signed": false})),
        "claim": r.claim.map(|c| json!({"region": c.region.map(|r| r.to_string()), "period": c.period.to_string()})),
        "proven": proven,
        "summaries": r.summaries,
        "enrolments": r.enrolments,
        "receipts": r.receipts,
        "problems": r.problem_count(),
        "general": r.general,
        "regions": regions,
    })
}

/// The proven unit and its chain, from the signed summaries only.
pub(super) fn print_proof(p: &ProofReport) {
    let unit = &p.unit;
    let chain: Vec<String> = p
        .chain
        .iter()
        .map(|v| format!("{} r{}", v.name, v.revision))
        .collect();
    println!(
        "VERIFIED: {} ({}) {} revision {}: counted, by digest, in: {}",
        unit.name,
        unit.region,
        unit.period,
        unit.revision,
        chain.join(" › ")
    );
    let top_level = p.chain.last().unwrap_or(unit).region.level() as u32;
    let rows: Vec<RegionRow> = p
        .chain
        .iter()
        .rev()
        .chain(std::iter::once(unit))
        .map(|v| RegionRow {
            name: v.name.clone(),
            code: v.region.to_string(),
            depth: v.region.level() as u32 - top_level,
            total: v.total,
            children_reported: v.children.len() as u32,
            children_expected: v.children_expected,
            verified: true,
        })
        .collect();
    print_table(
        &format!("signed figures on the path · {}", unit.period),
        &regions_table(&rows),
    );
}
