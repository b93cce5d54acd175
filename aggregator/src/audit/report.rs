//! What an audit found: a verdict per region, with problems named by the
//! region's path from the top of the bundle.

use std::collections::{BTreeMap, HashMap};

use tallytree_proto::{Month, RegionCode, pb};

use crate::tally::Tally;

/// One problem, attached to the region it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The region, when known.
    pub region: Option<RegionCode>,
    /// The finding, naming the rule.
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
}

/// The outcome of verifying a bundle.
#[derive(Debug, Clone, Default)]
pub struct AuditReport {
    /// The bundle's header.
    pub header: Option<pb::EvidenceHeader>,
    /// Per region, in code order.
    pub regions: BTreeMap<RegionCode, RegionVerdict>,
    /// Problems not tied to one region.
    pub general: Vec<String>,
    /// Summaries read.
    pub summaries: u64,
    /// Enrolments read.
    pub enrolments: u64,
    /// Receipts read.
    pub receipts: u64,
    /// The verified totals of the bundle's region, per month.
    pub totals: BTreeMap<Month, Tally>,
    /// Chinese names of the regions, from enrolments and summaries.
    pub names: HashMap<RegionCode, String>,
}

impl AuditReport {
    /// True when nothing is wrong.
    pub fn verified(&self) -> bool {
        self.general.is_empty() && self.regions.values().all(|r| r.problems.is_empty())
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
