//! What an audit found: a verdict per region, with problems named by the
//! region's path from the top of the bundle, and what was proven: the
//! figures of the signed summaries that verified, per region and month.
//!
//! The bundle's header is not signed: it is kept as the claim the signed
//! summaries are checked against ([`Claim`]), never as a fact.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tallytree_proto::{Digest, Month, PeriodRange, RegionCode, pb};

use crate::tally::Tally;

/// One problem, attached to the region it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The region, when known.
    pub region: Option<RegionCode>,
    /// The defect, naming the rule.
    pub message: String,
}

/// The verdict on one region (kept small: a national bundle has 640,000).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionVerdict {
    /// Summaries of the region verified.
    pub summaries: u32,
    /// Children counted / expected, over its summaries.
    pub reported: u32,
    /// Children expected.
    pub expected: u32,
    /// Problems found.
    pub problems: Vec<String>,
    /// The sum of the totals of the verified summaries counted in
    /// `summaries`.
    pub total: Tally,
}

/// What the unsigned header claims the bundle proves, once parsed: checked
/// against the signed summaries (each month of the period must have a
/// verified summary of each top region).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The region; `None` when the header names none (a bundle spanning
    /// several provinces: the anchors' regions are the tops).
    pub region: Option<RegionCode>,
    /// The period.
    pub period: PeriodRange,
}

/// The verified summary of a top region for one month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthFigures {
    /// Its revision.
    pub revision: u64,
    /// SHA-256 of its payload.
    pub digest: Digest,
    /// Its total.
    pub total: Tally,
    /// Children counted.
    pub children_reported: u32,
    /// Children expected.
    pub children_expected: u32,
}

/// The outcome of verifying a bundle.
#[derive(Debug, Clone, Default)]
pub struct AuditReport {
    /// The bundle's header, as read: unsigned, a claim only.
    pub header: Option<pb::EvidenceHeader>,
    /// The header's claim, parsed; `None` when it is missing or malformed
    /// (which is a problem).
    pub claim: Option<Claim>,
    /// Per region, in code order (which is the tree's pre-order).
    pub regions: BTreeMap<RegionCode, RegionVerdict>,
    /// Problems not tied to one region.
    pub general: Vec<String>,
    /// Summaries read.
    pub summaries: u64,
    /// Enrolments read.
    pub enrolments: u64,
    /// Receipts read.
    pub receipts: u64,
    /// The verified summaries of the top regions (the claimed region, or
    /// the anchors' when the header names none), per month.
    pub proven: BTreeMap<RegionCode, BTreeMap<Month, MonthFigures>>,
    /// Chinese names of the regions, from enrolments and summaries.
    pub names: HashMap<RegionCode, String>,
    /// Months some problem concerns.
    pub months_with_problems: BTreeSet<Month>,
    /// Problems that name no month, and so concern every month.
    pub undated_problems: usize,
    /// The latest root version the bundle's chain verified to, when the
    /// auditor pinned a root.
    pub root_version: Option<u64>,
}

impl AuditReport {
    /// True when nothing is wrong.
    pub fn verified(&self) -> bool {
        self.general.is_empty() && self.regions.values().all(|r| r.problems.is_empty())
    }

    /// True when no problem concerns `month`.
    pub fn month_verified(&self, month: Month) -> bool {
        self.undated_problems == 0 && !self.months_with_problems.contains(&month)
    }

    /// Number of problems.
    pub fn problem_count(&self) -> usize {
        self.general.len()
            + self
                .regions
                .values()
                .map(|r| r.problems.len())
                .sum::<usize>()
    }

    /// The months of the claimed period without a verified summary of `top`.
    pub fn months_missing(&self, top: RegionCode) -> Vec<Month> {
        let Some(claim) = self.claim else {
            return Vec::new();
        };
        let proven = self.proven.get(&top);
        claim
            .period
            .months()
            .filter(|m| !proven.is_some_and(|p| p.contains_key(m)))
            .collect()
    }

    /// The Chinese name of a region, or its code.
    pub fn name(&self, region: RegionCode) -> String {
        self.names
            .get(&region)
            .cloned()
            .unwrap_or_else(|| region.to_string())
    }

    /// "辽宁省 › 大连市 › 普兰店区": the names from the top of the bundle down.
    pub fn path(&self, region: RegionCode) -> String {
        let mut names: Vec<String> = region
            .ancestry()
            .filter(|r| self.regions.contains_key(r) || self.names.contains_key(r))
            .map(|r| self.name(r))
            .collect();
        names.reverse();
        if names.is_empty() {
            region.to_string()
        } else {
            names.join(" › ")
        }
    }
}
