//! A small federation, validly signed with real keys, built in memory for
//! the tamper matrix: 辽宁省 (the trust anchor) › 大连市 › 普兰店区 ›
//! 铁西街道 › two villages, for March 2026. Enrolments are signed by each
//! parent, summaries bottom-up by each unit (totals = local + child totals,
//! child references by payload digest), receipts by the parent of each unit.
//!
//! The bundle is written the way `node/src/evidence.rs` exports one: header;
//! enrolments, parents first; revocations; summaries, children first;
//! receipts; trailer. Tamper tests edit the parts, re-sign what the attacker
//! can sign, and write the bundle again.

// Shared by the tamper matrix and the verdict tests, each using part of it.
#![allow(dead_code)]

use std::collections::HashMap;

use tallytree_aggregator::{
    Candidate, CaseCounts, ChildEntry, Defect, SummarySource, SummaryView, Tally, TaskCounts,
    Trust, Verified,
    audit::{AuditReport, Auditor},
    bundle::{BundleReader, BundleWriter},
    verify_tree,
};
use tallytree_proto::{
    Category, Digest, Month, PublicKey, RegionCode, SigningKey, pb,
    statement::{self, Statement},
};

/// 辽宁省, the top of the tree and the auditor's trust anchor.
pub(crate) const PROVINCE: &str = "210000000000";
/// 大连市.
pub(crate) const CITY: &str = "210200000000";
/// 普兰店区.
pub(crate) const DISTRICT: &str = "210214000000";
/// 铁西街道.
pub(crate) const STREET: &str = "210214001000";
/// 东风村.
pub(crate) const VILLAGE_1: &str = "210214001001";
/// 前进村.
pub(crate) const VILLAGE_2: &str = "210214001002";
/// A village nobody enrolled (the invented one).
pub(crate) const VILLAGE_3: &str = "210214001003";
/// The month every summary covers.
pub(crate) const PERIOD: &str = "2026-03";
/// Another month, for summaries mixed in from elsewhere.
pub(crate) const OTHER_PERIOD: &str = "2026-02";

/// Enrolments are issued, and valid, from here (2026-03-01T00:00:00Z).
pub(crate) const ENROLLED_AT_MS: i64 = 1_772_323_200_000;
/// Summaries are issued from here on, one second apart bottom-up.
pub(crate) const ISSUED_AT_MS: i64 = ENROLLED_AT_MS + 30 * 86_400_000;

/// The units, top-down, with their names.
const UNITS: [(&str, &str); 6] = [
    (PROVINCE, "辽宁省"),
    (CITY, "大连市"),
    (DISTRICT, "普兰店区"),
    (STREET, "铁西街道"),
    (VILLAGE_1, "东风村"),
    (VILLAGE_2, "前进村"),
];

/// Parses a code the tests spell out.
pub(crate) fn code(s: &str) -> RegionCode {
    RegionCode::parse(s).expect("region code")
}

/// A month the tests spell out.
pub(crate) fn month(s: &str) -> Month {
    Month::parse(s).expect("month")
}

/// A fresh Ed25519 key.
pub(crate) fn new_key() -> SigningKey {
    SigningKey::generate().expect("key").0
}

/// A tally with one or two categories and some tasks, all invariants held;
/// `seed` varies the figures between units.
pub(crate) fn tally(seed: u64) -> Tally {
    let mut t = Tally::default();
    *t.category_mut(Category::Land) = CaseCounts {
        registered: 10 + seed,
        resolved: 7 + seed,
        escalated: 1,
        in_progress: 2,
        resolved_on_time: 6 + seed,
    };
    *t.category_mut(Category::Labour) = CaseCounts {
        registered: 3 * seed,
        resolved: 2 * seed,
        escalated: 0,
        in_progress: seed,
        resolved_on_time: seed,
    };
    t.tasks = TaskCounts {
        assigned: 4 + seed,
        completed: 3 + seed,
        in_progress: 1,
        overdue: 1,
    };
    t
}

/// The decoded view of a summary envelope (not verified: the bundle's own
/// summaries, which the builder signed).
pub(crate) fn view_of(env: &pb::Envelope) -> SummaryView {
    let s: pb::Summary = statement::peek_unverified(env).expect("summary payload");
    SummaryView::from_pb(&s).expect("well-formed summary")
}

/// The region a statement in the bundle speaks about.
fn region_of<S: Statement>(env: &pb::Envelope, region: impl Fn(&S) -> &str) -> RegionCode {
    let s: S = statement::peek_unverified(env).expect("statement payload");
    code(region(&s))
}

/// One unit: its code, name and signing key.
pub(crate) struct Unit {
    /// The region code.
    pub(crate) code: RegionCode,
    /// The Chinese name, as enrolled.
    pub(crate) name: &'static str,
    /// The unit's own key.
    pub(crate) key: SigningKey,
}

/// The signed statements of the federation, in the parts a bundle has.
pub(crate) struct Federation {
    /// Units, top-down.
    pub(crate) units: Vec<Unit>,
    /// Enrolment envelopes, parents first.
    pub(crate) enrolments: Vec<pb::Envelope>,
    /// Revocation envelopes.
    pub(crate) revocations: Vec<pb::Envelope>,
    /// Summary envelopes, children before the parents that count them.
    pub(crate) summaries: Vec<pb::Envelope>,
    /// Receipt envelopes, one per summary below the province.
    pub(crate) receipts: Vec<pb::Envelope>,
}

impl Federation {
    /// Enrols every unit (signed by its parent) and signs every summary
    /// bottom-up, each parent counting its children's summaries by digest,
    /// with a receipt from the parent for each.
    pub(crate) fn build() -> Federation {
        let units: Vec<Unit> = UNITS
            .iter()
            .map(|(c, name)| Unit {
                code: code(c),
                name,
                key: new_key(),
            })
            .collect();
        let mut fed = Federation {
            units,
            enrolments: Vec::new(),
            revocations: Vec::new(),
            summaries: Vec::new(),
            receipts: Vec::new(),
        };
        fed.enrolments = fed.units[1..]
            .iter()
            .map(|unit| {
                let parent = unit.code.parent().expect("below the province");
                let enrolment = fed.enrolment(unit.code, &unit.key.public_key());
                statement::seal(fed.key(parent), &enrolment).envelope
            })
            .collect();
        // Bottom-up: the villages, then each level above.
        let mut issued_at = ISSUED_AT_MS;
        for seed in (0..fed.units.len()).rev() {
            let (region, name) = (fed.units[seed].code, fed.units[seed].name);
            let mut children: Vec<ChildEntry> = fed
                .summaries
                .iter()
                .map(|env| (view_of(env), Digest::of(&env.payload)))
                .filter(|(v, _)| v.parent == Some(region))
                .map(|(v, digest)| ChildEntry {
                    region: v.region,
                    revision: v.revision,
                    digest,
                })
                .collect();
            children.sort_by_key(|c| c.region);
            let local = tally(seed as u64);
            let mut view = SummaryView {
                region,
                name: name.to_owned(),
                parent: region.parent(),
                period: month(PERIOD),
                revision: 1,
                issued_at_ms: issued_at,
                local,
                total: local,
                children_expected: children.len() as u32,
                children,
            };
            view.total = fed.rolled_up(&view);
            let env = fed.seal_summary(&view);
            fed.summaries.push(env);
            issued_at += 1_000;
        }
        for env in fed.summaries.clone() {
            let view = view_of(&env);
            if view.parent.is_some() {
                let receipt = fed.receipt(&view, Digest::of(&env.payload));
                fed.receipts.push(receipt);
            }
        }
        fed
    }

    /// The unit with this code.
    pub(crate) fn unit(&self, region: RegionCode) -> &Unit {
        self.units
            .iter()
            .find(|u| u.code == region)
            .unwrap_or_else(|| panic!("no unit {region}"))
    }

    /// The key of a unit.
    pub(crate) fn key(&self, region: RegionCode) -> &SigningKey {
        &self.unit(region).key
    }

    /// The province's key as an auditor's anchor file would give it.
    pub(crate) fn anchor(&self) -> (RegionCode, PublicKey) {
        let province = code(PROVINCE);
        (province, self.key(province).public_key())
    }

    /// The enrolment a parent signs for `region` and `key`.
    pub(crate) fn enrolment(&self, region: RegionCode, key: &PublicKey) -> pb::Enrolment {
        let name = UNITS
            .iter()
            .find(|(c, _)| code(c) == region)
            .map_or("新村", |(_, n)| n);
        pb::Enrolment {
            parent: region.parent().expect("below the province").to_string(),
            region: region.to_string(),
            name: name.to_owned(),
            public_key: key.0.to_vec(),
            serial: 1,
            valid_from_ms: ENROLLED_AT_MS,
            issued_at_ms: ENROLLED_AT_MS,
            tls_spki_sha256: Vec::new(),
        }
    }

    /// `view.local` plus the totals of the child summaries it references,
    /// found in the bundle by digest: what an honest unit signs as total.
    pub(crate) fn rolled_up(&self, view: &SummaryView) -> Tally {
        view.children.iter().fold(view.local, |sum, child| {
            let env = self
                .summaries
                .iter()
                .find(|env| Digest::of(&env.payload) == child.digest)
                .unwrap_or_else(|| panic!("child {} not in the bundle", child.region));
            sum.checked_add(&view_of(env).total).expect("no overflow")
        })
    }

    /// Signs a summary with its own unit's key.
    pub(crate) fn seal_summary(&self, view: &SummaryView) -> pb::Envelope {
        statement::seal(self.key(view.region), &view.to_pb()).envelope
    }

    /// The receipt the parent signs for a summary.
    pub(crate) fn receipt(&self, view: &SummaryView, digest: Digest) -> pb::Envelope {
        let parent = view.parent.expect("below the province");
        let receipt = pb::Receipt {
            parent: parent.to_string(),
            region: view.region.to_string(),
            period: view.period.to_string(),
            revision: view.revision,
            digest: digest.0.to_vec(),
            received_at_ms: view.issued_at_ms + 50,
        };
        statement::seal(self.key(parent), &receipt).envelope
    }

    /// Position of `region`'s summary for [`PERIOD`] in the bundle.
    pub(crate) fn summary_index(&self, region: RegionCode) -> usize {
        self.summaries
            .iter()
            .position(|env| {
                let v = view_of(env);
                v.region == region && v.period == month(PERIOD)
            })
            .unwrap_or_else(|| panic!("no summary of {region} for {PERIOD}"))
    }

    /// `region`'s summary for [`PERIOD`].
    pub(crate) fn summary(&self, region: RegionCode) -> &pb::Envelope {
        &self.summaries[self.summary_index(region)]
    }

    /// `region`'s summary for [`PERIOD`], decoded.
    pub(crate) fn view(&self, region: RegionCode) -> SummaryView {
        view_of(self.summary(region))
    }

    /// Removes `region`'s summary for [`PERIOD`] and the receipts for it.
    pub(crate) fn remove_summary(&mut self, region: RegionCode) -> pb::Envelope {
        let i = self.summary_index(region);
        self.receipts
            .retain(|r| region_of::<pb::Receipt>(r, |r| &r.region) != region);
        self.summaries.remove(i)
    }

    /// Puts a summary into the bundle just before the summary of `before`,
    /// so it comes ahead of the parent that counts it.
    pub(crate) fn insert_summary_before(&mut self, before: RegionCode, env: pb::Envelope) {
        let i = self.summary_index(before);
        self.summaries.insert(i, env);
    }

    /// The receipt held for `region`'s summary.
    pub(crate) fn receipt_of(&self, region: RegionCode) -> pb::Envelope {
        self.receipts
            .iter()
            .find(|r| region_of::<pb::Receipt>(r, |r| &r.region) == region)
            .cloned()
            .unwrap_or_else(|| panic!("no receipt for {region}"))
    }

    /// Replaces the receipts for `region` with `receipt`.
    pub(crate) fn set_receipt(&mut self, region: RegionCode, receipt: pb::Envelope) {
        self.receipts
            .retain(|r| region_of::<pb::Receipt>(r, |r| &r.region) != region);
        self.receipts.push(receipt);
    }

    /// Position of `region`'s enrolment.
    pub(crate) fn enrolment_index(&self, region: RegionCode) -> usize {
        self.enrolments
            .iter()
            .position(|env| region_of::<pb::Enrolment>(env, |e| &e.region) == region)
            .unwrap_or_else(|| panic!("no enrolment of {region}"))
    }

    /// `region` signs a new revision of its summary: the revision and issue
    /// time move on, `edit` changes what it likes (the total as it leaves
    /// it, so a dishonest unit can misstate it), and the parent's receipt
    /// is replaced by one for the new revision. Every ancestor then signs,
    /// honestly, a new revision counting the new summary.
    pub(crate) fn reissue_as_is(
        &mut self,
        region: RegionCode,
        edit: impl FnOnce(&mut SummaryView),
    ) {
        let mut view = self.view(region);
        view.revision += 1;
        view.issued_at_ms += 10_000;
        edit(&mut view);
        self.replace(region, view);
    }

    /// As [`Federation::reissue_as_is`], but the total is recomputed
    /// honestly from the children `edit` leaves referenced.
    pub(crate) fn reissue(&mut self, region: RegionCode, edit: impl FnOnce(&mut SummaryView)) {
        let mut view = self.view(region);
        view.revision += 1;
        view.issued_at_ms += 10_000;
        edit(&mut view);
        view.total = self.rolled_up(&view);
        self.replace(region, view);
    }

    /// Signs `view` in place of `region`'s summary, with a new receipt, and
    /// re-signs the ancestors to count it.
    fn replace(&mut self, region: RegionCode, view: SummaryView) {
        let env = self.seal_summary(&view);
        let digest = Digest::of(&env.payload);
        let i = self.summary_index(region);
        self.summaries[i] = env;
        if view.parent.is_some() {
            let receipt = self.receipt(&view, digest);
            self.set_receipt(region, receipt);
        }
        if let Some(parent) = view.parent {
            self.reissue(parent, |p| {
                for c in p.children.iter_mut().filter(|c| c.region == region) {
                    c.revision = view.revision;
                    c.digest = digest;
                }
            });
        }
    }

    /// The header the province writes: its region, [`PERIOD`].
    pub(crate) fn header(&self) -> pb::EvidenceHeader {
        pb::EvidenceHeader {
            format: "tallytree-evidence-v1".into(),
            region: PROVINCE.into(),
            period: PERIOD.into(),
            exported_by: PROVINCE.into(),
            exported_at_ms: ISSUED_AT_MS + 86_400_000,
            exported_by_key: self.anchor().1.0.to_vec(),
        }
    }

    /// The bundle file, in export order, with its trailer.
    pub(crate) fn bundle(&self) -> Vec<u8> {
        self.bundle_with(Some(self.header()))
    }

    /// The bundle file with `header` (or none) in place of the province's.
    pub(crate) fn bundle_with(&self, header: Option<pb::EvidenceHeader>) -> Vec<u8> {
        use pb::evidence_item::Item;
        let mut w = BundleWriter::new(Vec::new());
        let mut write = |item| {
            w.write(&pb::EvidenceItem { item: Some(item) })
                .expect("write to memory");
        };
        if let Some(header) = header {
            write(Item::Header(header));
        }
        for env in &self.enrolments {
            write(Item::Enrolment(env.clone()));
        }
        for env in &self.revocations {
            write(Item::Revocation(env.clone()));
        }
        for env in &self.summaries {
            write(Item::Summary(env.clone()));
        }
        for env in &self.receipts {
            write(Item::Receipt(env.clone()));
        }
        w.finish().expect("write to memory")
    }

    /// Writes the bundle and verifies it as `tallytree audit verify` does.
    pub(crate) fn audit(&self) -> AuditReport {
        audit_bytes(&self.bundle(), self.anchor())
    }

    /// [`Federation::audit`] with `header` in place of the province's.
    pub(crate) fn audit_with(&self, header: Option<pb::EvidenceHeader>) -> AuditReport {
        audit_bytes(&self.bundle_with(header), self.anchor())
    }

    /// The checks `parent`'s node runs when a child submits `env`: trust
    /// rooted at the parent's own key, the enrolments and revocations of its
    /// subtree (as children forward them), and [`verify_tree`] with the
    /// bundle's summaries as what the submission carries.
    pub(crate) fn submit_to(
        &self,
        parent: RegionCode,
        env: &pb::Envelope,
    ) -> Result<Verified<'_>, Defect> {
        let mut trust = Trust::with_anchor(parent, self.key(parent).public_key());
        let below = |r: RegionCode| r != parent && r.is_within(parent);
        let enrolments: Vec<pb::Envelope> = self
            .enrolments
            .iter()
            .filter(|e| below(region_of::<pb::Enrolment>(e, |e| &e.region)))
            .cloned()
            .collect();
        let revocations: Vec<pb::Envelope> = self
            .revocations
            .iter()
            .filter(|r| below(region_of::<pb::Revocation>(r, |r| &r.region)))
            .cloned()
            .collect();
        if let Some(f) = trust
            .admit_all(&enrolments, &revocations)
            .into_iter()
            .next()
        {
            return Err(f);
        }
        let source = Carried::new(&self.summaries);
        verify_tree(&trust, &source, env)
    }
}

/// Feeds every item of a bundle file to an [`Auditor`] trusting `anchor`.
pub(crate) fn audit_bytes(bytes: &[u8], anchor: (RegionCode, PublicKey)) -> AuditReport {
    let mut auditor = Auditor::new(&[anchor], 2);
    for item in BundleReader::new(bytes) {
        auditor.feed(item.expect("a readable bundle"));
    }
    auditor.finish()
}

/// The descendant summaries carried with a submission. Looked up by digest
/// as the node does, and failing that by region and revision, so that a
/// summary altered after signing is still found and checked (and refused)
/// rather than merely missing.
pub(crate) struct Carried<'a> {
    /// By payload digest.
    by_digest: HashMap<Digest, &'a pb::Envelope>,
    /// By claimed region and revision.
    by_revision: HashMap<(RegionCode, u64), &'a pb::Envelope>,
}

impl<'a> Carried<'a> {
    /// Indexes `summaries`.
    pub(crate) fn new(summaries: &'a [pb::Envelope]) -> Carried<'a> {
        let mut by_digest = HashMap::new();
        let mut by_revision = HashMap::new();
        for env in summaries {
            by_digest.insert(Digest::of(&env.payload), env);
            if let Ok(s) = statement::peek_unverified::<pb::Summary>(env)
                && let Ok(r) = RegionCode::parse(&s.region)
            {
                by_revision.insert((r, s.revision), env);
            }
        }
        Carried {
            by_digest,
            by_revision,
        }
    }
}

impl<'a> SummarySource<'a> for Carried<'a> {
    fn find(&self, child: &ChildEntry, _period: Month) -> Option<Candidate<'a>> {
        self.by_digest
            .get(&child.digest)
            .or_else(|| self.by_revision.get(&(child.region, child.revision)))
            .map(|env| Candidate::Unverified(env))
    }
}
