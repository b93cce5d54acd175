//! The findings' input: for every unit of a subtree, the figures of each
//! month as its parent counts them ([`Figures`], from the counted signed
//! summary), the earlier revisions the timing rules read, and which children
//! were enrolled when ([`Enrolled`]). A node fills it from its store, an
//! auditor from a bundle; both from the same signed statements.

use std::collections::{BTreeMap, BTreeSet};

use tallytree_proto::{Category, Digest, Month, RegionCode};

use crate::{summary::SummaryView, tally::Tally, trust::Trust};

/// An earlier revision of a month than the one counted, as the timing
/// rules read it: the first one held, and the last one signed before the
/// month's deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Earlier {
    /// Its revision.
    pub revision: u64,
    /// When it was signed.
    pub issued_at_ms: i64,
    /// Its payload's digest.
    pub digest: Digest,
    /// A fingerprint of the registered counts per category of the unit's
    /// own records.
    pub registered_print: u64,
}

impl Earlier {
    /// The timing facts of a summary.
    pub fn of(view: &SummaryView, digest: Digest) -> Earlier {
        Earlier {
            revision: view.revision,
            issued_at_ms: view.issued_at_ms,
            digest,
            registered_print: registered_print(&view.local),
        }
    }
}

/// Counts of one tally, as the rules read them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Cases registered, all categories.
    pub registered: u64,
    /// Of those, resolved.
    pub resolved: u64,
    /// Of the resolved, on time.
    pub resolved_on_time: u64,
    /// Of those registered, escalated.
    pub escalated: u64,
    /// Tasks due.
    pub tasks_assigned: u64,
    /// Tasks overdue.
    pub tasks_overdue: u64,
    /// A fingerprint of the registered counts per category.
    pub registered_print: u64,
    /// A fingerprint of every case count of every category.
    pub cases_print: u64,
    /// A fingerprint of the whole tally, cases and tasks.
    pub tally_print: u64,
}

impl Counts {
    /// The counts of `tally`.
    pub fn of(tally: &Tally) -> Counts {
        let cases = tally.case_totals();
        let mut cases_print = Fingerprint::default();
        for c in Category::ALL {
            let k = tally.category(c);
            cases_print.add(&[
                k.registered,
                k.resolved,
                k.escalated,
                k.in_progress,
                k.resolved_on_time,
            ]);
        }
        let t = tally.tasks;
        let mut tally_print = cases_print.clone();
        tally_print.add(&[t.assigned, t.completed, t.in_progress, t.overdue]);
        Counts {
            registered: cases.registered,
            resolved: cases.resolved,
            resolved_on_time: cases.resolved_on_time,
            escalated: cases.escalated,
            tasks_assigned: t.assigned,
            tasks_overdue: t.overdue,
            registered_print: registered_print(tally),
            cases_print: cases_print.finish(),
            tally_print: tally_print.finish(),
        }
    }
}

/// One unit's month as counted: what the rules read of its signed summary.
/// The unit's own records (`local`) are judged against its own history, so
/// each case is judged once, where it was recorded; the totals are compared
/// between siblings and with the parent.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// The counted revision.
    pub revision: u64,
    /// When it was signed.
    pub issued_at_ms: i64,
    /// Its payload's digest.
    pub digest: Digest,
    /// Earlier revisions held (the first, the last before the deadline),
    /// ascending by revision; none when the counted one is the only one.
    pub earlier: Vec<Earlier>,
    /// What the unit itself recorded.
    pub local: Counts,
    /// Its own records and its children's.
    pub total: Counts,
    /// The children counted, ascending.
    pub children: Vec<RegionCode>,
    /// The children expected when it was signed.
    pub children_expected: u32,
}

impl Figures {
    /// The figures of a counted summary, with no earlier revisions.
    pub fn of(view: &SummaryView, digest: Digest) -> Figures {
        Figures {
            revision: view.revision,
            issued_at_ms: view.issued_at_ms,
            digest,
            earlier: Vec::new(),
            local: Counts::of(&view.local),
            total: Counts::of(&view.total),
            children: view.children.iter().map(|c| c.region).collect(),
            children_expected: view.children_expected,
        }
    }

    /// The month's first revision held: an earlier one, or this.
    pub fn first(&self) -> Earlier {
        self.earlier.first().copied().unwrap_or(Earlier {
            revision: self.revision,
            issued_at_ms: self.issued_at_ms,
            digest: self.digest,
            registered_print: self.local.registered_print,
        })
    }
}

/// FNV-1a over little-endian u64s: a fixed, portable fingerprint, so a
/// node and an auditor built apart compare figures the same way.
#[derive(Clone)]
struct Fingerprint(u64);

impl Default for Fingerprint {
    fn default() -> Fingerprint {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }
}

impl Fingerprint {
    fn add(&mut self, values: &[u64]) {
        for v in values {
            for b in v.to_le_bytes() {
                self.0 ^= u64::from(b);
                self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }

    fn finish(self) -> u64 {
        self.0
    }
}

fn registered_print(tally: &Tally) -> u64 {
    let mut p = Fingerprint::default();
    for c in Category::ALL {
        p.add(&[tally.category(c).registered]);
    }
    p.finish()
}

/// When a child was enrolled. A revoked key does not un-enrol its unit (it
/// reports on with a new key), so a unit once enrolled stays expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enrolled {
    /// Its parent.
    pub parent: RegionCode,
    /// From when its first enrolment is valid.
    pub since_ms: i64,
}

impl Enrolled {
    /// Every enrolled unit of `trust` within `top` (below it), from its
    /// earliest enrolment.
    pub fn all(trust: &Trust, top: RegionCode) -> BTreeMap<RegionCode, Enrolled> {
        let mut out: BTreeMap<RegionCode, Enrolled> = BTreeMap::new();
        for e in trust.enrolments() {
            if e.region == top || !e.region.is_within(top) {
                continue;
            }
            let entry = out.entry(e.region).or_insert(Enrolled {
                parent: e.parent,
                since_ms: e.valid_from_ms,
            });
            entry.since_ms = entry.since_ms.min(e.valid_from_ms);
        }
        out
    }
}

/// One unit of the panel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Unit {
    /// Its Chinese name, from its latest summary.
    pub name: String,
    /// Its months as counted.
    pub months: BTreeMap<Month, Figures>,
}

/// The counted figures of a subtree, month by month.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    /// The subtree's top unit (the node, or the bundle's region).
    pub top: RegionCode,
    /// Every unit with a summary, by region.
    pub units: BTreeMap<RegionCode, Unit>,
    /// Every enrolled unit of the subtree below the top, by region.
    pub enrolled: BTreeMap<RegionCode, Enrolled>,
    /// The children of each unit: enrolled or with a summary.
    pub children: BTreeMap<RegionCode, BTreeSet<RegionCode>>,
}

impl Panel {
    /// An empty panel of the subtree of `top`.
    pub fn new(top: RegionCode) -> Panel {
        Panel {
            top,
            units: BTreeMap::new(),
            enrolled: BTreeMap::new(),
            children: BTreeMap::new(),
        }
    }

    /// Sets `region`'s counted figures for `month`; returns the figures
    /// they replace.
    pub fn insert(
        &mut self,
        region: RegionCode,
        name: &str,
        month: Month,
        figures: Figures,
    ) -> Option<Figures> {
        if region != self.top
            && let Some(parent) = region.parent()
        {
            self.children.entry(parent).or_default().insert(region);
        }
        let unit = self.units.entry(region).or_default();
        if unit.name != name {
            name.clone_into(&mut unit.name);
        }
        unit.months.insert(month, figures)
    }

    /// Records an enrolment.
    pub fn enrol(&mut self, region: RegionCode, enrolled: Enrolled) {
        self.children
            .entry(enrolled.parent)
            .or_default()
            .insert(region);
        self.enrolled.insert(region, enrolled);
    }

    /// `region`'s figures for `month`.
    pub fn figures(&self, region: RegionCode, month: Month) -> Option<&Figures> {
        self.units.get(&region)?.months.get(&month)
    }

    /// `region`'s name, or its code when no summary named it.
    pub fn name(&self, region: RegionCode) -> String {
        self.units
            .get(&region)
            .map(|u| u.name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| region.to_string())
    }

    /// The names from the top down to `region`, joined by " › ".
    pub fn path(&self, region: RegionCode) -> String {
        let mut chain: Vec<RegionCode> = region
            .ancestry()
            .take_while(|r| r.is_within(self.top))
            .collect();
        chain.reverse();
        chain
            .into_iter()
            .map(|r| self.name(r))
            .collect::<Vec<_>>()
            .join(" › ")
    }

    /// The known children of `region`.
    pub fn children_of(&self, region: RegionCode) -> impl Iterator<Item = RegionCode> + '_ {
        self.children.get(&region).into_iter().flatten().copied()
    }
}
