//! Offline verification of evidence bundles and inclusion proofs, from the
//! trust anchor down. The checks are [`Trust`]'s, [`SummaryView`]'s and
//! [`crate::rollup`]'s, the very ones parents run on submissions; this
//! module streams them over a bundle: signatures checked on several threads
//! in batches, arithmetic in bundle order, keeping only the child totals no
//! parent has consumed yet.
//!
//! - `pipeline`: what runs on the verifying threads.
//! - `claim`: the unsigned header's claim, checked against the signed
//!   summaries.
//! - `receipts`: receipts against what each parent counted.
//! - [`report`]: the verdicts and the proven figures.
//! - `proof`: inclusion proofs.

mod claim;
mod pipeline;
mod proof;
mod receipts;
pub mod report;

pub use proof::{ProofReport, verify_proof};
pub use report::{AuditReport, Claim, MonthFigures, Problem, RegionVerdict};

use std::collections::{HashMap, HashSet};

use tallytree_proto::{Digest, Month, PublicKey, RegionCode, pb, statement};

use crate::{
    defect::{Absence, Defect},
    parallel::Pool,
    rollup::{ChildRefs, Found, check_completeness},
    root::Pinned,
    summary::{ChildEntry, SummaryView},
    trust::{Trust, TrustedKey},
};
use pipeline::{Failure, Job, Outcome, work};
use receipts::Counted;

/// Statements handed to the verifying threads at a time.
const BATCH: usize = 256;

/// Streams a bundle's items through the checks. The calling thread reads
/// the bundle, finds each statement's key and checks the arithmetic in
/// bundle order; a [`Pool`] of threads verifies the signatures meanwhile, so
/// every core stays busy with the expensive part.
#[derive(Debug)]
pub struct Auditor {
    trust: Trust,
    pool: Pool<Job, Outcome>,
    report: AuditReport,
    /// Enrolments whose signer was not known when they were read.
    retry: Vec<pb::Envelope>,
    /// The keys enrolled by the enrolments being verified, by key id: a
    /// child's enrolment signed by one is verified at once, provisionally,
    /// and admitted only if its parent's was (bundles list a parent's
    /// enrolment right before its children's).
    in_flight: HashMap<Digest, TrustedKey>,
    revocations: Vec<pb::Envelope>,
    /// Whether the enrolments and revocations are in (at the first summary).
    admitted: bool,
    receipts: Vec<pb::Envelope>,
    /// Verified summaries no parent has consumed yet, by digest.
    pending: HashMap<Digest, Found>,
    /// Summaries that did not verify: by digest, and by the region, month
    /// and revision they claim (an altered payload has another digest than
    /// the one its parent references).
    failed: HashSet<Digest>,
    failed_claims: HashSet<(RegionCode, Month, u64)>,
    /// Regions with a summary that did not verify (when its claim cannot
    /// even be decoded, the region of the key that should have signed it).
    failed_regions: HashSet<RegionCode>,
    /// What each parent counted of each child; receipts are compared with it.
    counted: Counted,
    /// Keep a verdict for every region (for `--all`), not only for those
    /// with problems.
    detail: bool,
    /// (region, month) of every verified summary.
    seen: HashSet<(RegionCode, Month)>,
    /// What the auditor pinned, until the bundle's roots are walked.
    pinned: Option<Pinned>,
    /// The bundle's roots, until they are walked.
    roots: Vec<pb::Envelope>,
    /// Now, for the final root's expiry.
    now_ms: i64,
}

impl Auditor {
    /// An auditor trusting `anchors` (the province keys), checking
    /// signatures on `threads` threads.
    pub fn new(anchors: &[(RegionCode, PublicKey)], threads: usize) -> Auditor {
        Auditor::pinning(Pinned::Keys(anchors.to_vec()), 0, threads)
    }

    /// An auditor that pinned `pinned`: with a root, the bundle's chain of
    /// roots is walked from it (the final root's expiry judged at `now_ms`)
    /// and the top unit's keys it names are the anchors.
    pub fn pinning(pinned: Pinned, now_ms: i64, threads: usize) -> Auditor {
        Auditor {
            pinned: Some(pinned),
            roots: Vec::new(),
            now_ms,
            trust: Trust::default(),
            pool: Pool::new(threads, BATCH, work),
            report: AuditReport::default(),
            retry: Vec::new(),
            in_flight: HashMap::new(),
            revocations: Vec::new(),
            admitted: false,
            receipts: Vec::new(),
            pending: HashMap::new(),
            failed: HashSet::new(),
            failed_claims: HashSet::new(),
            failed_regions: HashSet::new(),
            counted: Counted::default(),
            detail: true,
            seen: HashSet::new(),
        }
    }

    /// Records a problem of `region` (or a general one) concerning
    /// `months` (none: every month).
    fn problem(
        &mut self,
        region: Option<RegionCode>,
        months: impl IntoIterator<Item = Month>,
        message: String,
    ) {
        let mut dated = false;
        for m in months {
            dated = true;
            self.report.months_with_problems.insert(m);
        }
        if !dated {
            self.report.undated_problems += 1;
        }
        match region {
            Some(r) => self
                .report
                .regions
                .entry(r)
                .or_default()
                .problems
                .push(message),
            None => self.report.general.push(message),
        }
    }

    fn defect(&mut self, f: &Defect, region: Option<RegionCode>, month: Option<Month>) {
        let region = f.region().or(region);
        self.problem(region, f.month().or(month), f.to_string());
    }

    /// Keeps verdicts and names only for regions with problems (and their
    /// paths): what a national bundle needs, when not every region is listed.
    pub fn problems_only(mut self) -> Auditor {
        self.detail = false;
        self
    }

    /// Takes the next item of the bundle.
    pub fn feed(&mut self, item: pb::EvidenceItem) {
        use pb::evidence_item::Item;
        match item.item {
            Some(Item::Header(h)) => self.header(h),
            Some(Item::Enrolment(e)) => {
                self.walk_roots();
                self.report.enrolments += 1;
                self.enrolment(e);
            }
            Some(Item::Revocation(r)) => self.revocations.push(r),
            Some(Item::Summary(s)) => {
                self.walk_roots();
                self.admit();
                self.report.summaries += 1;
                let job = match self.trust.signer_of::<pb::Summary>(&s, "summary") {
                    Ok(signer) => Job::Summary(s, signer),
                    Err(f) => Job::Unverifiable(s, f),
                };
                self.push(job);
            }
            Some(Item::Receipt(r)) => {
                self.report.receipts += 1;
                self.receipts.push(r);
            }
            Some(Item::Root(r)) => self.roots.push(r),
            Some(Item::Trailer(_)) | None => {}
        }
    }

    /// Walks the bundle's roots from the pinned one, once, before the first
    /// statement that needs the top unit's keys: the node keys of the
    /// verified chain become the anchors. A chain refused is a problem; the
    /// roots verified before the refusal stay trusted.
    fn walk_roots(&mut self) {
        let Some(pinned) = self.pinned.take() else {
            return;
        };
        let offered = std::mem::take(&mut self.roots);
        let (trust, version, refused) = pinned.trust(&offered, self.now_ms);
        self.trust = trust;
        self.report.root_version = version;
        if let Some(e) = refused {
            let region = match &pinned {
                Pinned::Root(r) => Some(r.region),
                Pinned::Keys(_) => None,
            };
            self.problem(region, [], e.to_string());
        }
    }

    /// Hands a statement to the verifying threads and settles whatever
    /// they have finished.
    fn push(&mut self, job: Job) {
        self.pool.push(job);
        while let Some(outcomes) = self.pool.ready() {
            self.settle(outcomes);
        }
    }

    /// Finishes the verification in flight and leaves the threads idle, so
    /// that the caller can measure something else meanwhile (a benchmark
    /// sampling the machine's speed); feeding goes on afterwards.
    pub fn pause(&mut self) {
        self.drain();
    }

    /// Waits for the verifying threads and settles everything in flight.
    fn drain(&mut self) {
        let outcomes = self.pool.finish();
        self.settle(outcomes);
    }

    fn settle(&mut self, outcomes: Vec<Outcome>) {
        for outcome in outcomes {
            match outcome {
                Outcome::Enrolment {
                    result,
                    signer,
                    provisional,
                } => {
                    if let Ok(view) = &result {
                        self.in_flight.remove(&Digest::of(&view.key.0));
                    }
                    if let Some(env) = provisional
                        && self.trust.region_of_key(&signer.key) != Some(signer.region)
                    {
                        // Its parent's enrolment did not verify: once more
                        // at the end, where the defect is reported.
                        self.retry.push(env);
                        continue;
                    }
                    match result {
                        Ok(view) => self.trust.insert_enrolment(view),
                        Err(f) => self.defect(&f, None, None),
                    }
                }
                Outcome::Summary(Ok((view, digest))) => self.check(view, digest),
                Outcome::Summary(Err(failure)) => self.failure(failure),
            }
        }
    }

    /// An enrolment is verified with its parent's key. Bundles list
    /// enrolments parents first, so the key is usually trusted already;
    /// when the parent's own enrolment is still being verified, wait for
    /// it; when the parent comes later in the bundle, try again at the end.
    fn enrolment(&mut self, env: pb::Envelope) {
        if self.admitted {
            // After the summaries began: admitted on the spot.
            self.drain();
            if let Err(f) = self.trust.admit_enrolment(&env) {
                self.defect(&f, None, None);
            }
            return;
        }
        let trusted = self
            .trust
            .signer_of::<pb::Enrolment>(&env, "enrolment")
            .ok()
            .map(|signer| (signer, false));
        let signer = trusted.or_else(|| {
            let id = env.signatures.first().map(|s| s.keyid.as_str())?;
            let id = Digest::from_hex(id)?;
            self.in_flight.get(&id).map(|signer| (*signer, true))
        });
        let Some((signer, provisional)) = signer else {
            self.retry.push(env);
            return;
        };
        // What it enrols, unverified yet: for its children's enrolments.
        if let Ok(e) = statement::peek_unverified::<pb::Enrolment>(&env)
            && let (Ok(region), Ok(key)) = (
                RegionCode::parse(&e.region),
                PublicKey::from_slice(&e.public_key),
            )
        {
            self.in_flight.insert(
                Digest::of(&key.0),
                TrustedKey {
                    region,
                    key,
                    valid_from_ms: e.valid_from_ms,
                    revoked_at_ms: None,
                },
            );
        }
        self.push(Job::Enrolment {
            env,
            signer,
            provisional,
        });
    }

    /// Before the first summary: the enrolments in, then the ones that came
    /// before their parents, then the revocations.
    fn admit(&mut self) {
        if self.admitted {
            return;
        }
        self.admitted = true;
        self.drain();
        // Keys of enrolments that did not verify.
        self.in_flight.clear();
        let retry = std::mem::take(&mut self.retry);
        let revocations = std::mem::take(&mut self.revocations);
        let defects = self.trust.admit_all(&retry, &revocations);
        for f in defects {
            self.defect(&f, None, None);
        }
    }

    fn failure(&mut self, failure: Failure) {
        let Failure {
            defect,
            digest,
            claim,
        } = failure;
        self.failed.insert(digest);
        if let Some((region, Some(period), revision)) = claim {
            self.failed_claims.insert((region, period, revision));
        }
        if let Some(region) = defect.region().or(claim.map(|c| c.0)) {
            self.failed_regions.insert(region);
        }
        self.defect(&defect, claim.map(|c| c.0), claim.and_then(|c| c.1));
    }

    /// Why the child summary a reference names is not among the verified
    /// ones: it did not verify, or nobody put it in the bundle.
    fn absence(&self, child: &ChildEntry, period: Month) -> Absence {
        if self.failed.contains(&child.digest)
            || self
                .failed_claims
                .contains(&(child.region, period, child.revision))
            || self.failed_regions.contains(&child.region)
        {
            Absence::DidNotVerify
        } else {
            Absence::NotProvided
        }
    }

    /// A verified summary, in bundle order: its children (verified before
    /// it) by the roll-up rules, completeness, and what it proves.
    fn check(&mut self, view: SummaryView, digest: Digest) {
        let region = view.region;
        let period = view.period;
        let mut refs = ChildRefs::new(&view);
        let mut defects = Vec::new();
        for c in &view.children {
            // What the parent counts, whatever becomes of the child: receipts
            // are compared with this.
            self.counted.count(c.region, period, c.revision, &c.digest);
            let found = match self.pending.remove(&c.digest) {
                Some(found) => Ok(found),
                None => Err(self.absence(c, period)),
            };
            if let Err(f) = refs.child(c, found) {
                defects.push(f);
            }
        }
        defects.extend(refs.check_total().err());
        defects.extend(check_completeness(&self.trust, &view).err());
        for f in &defects {
            self.defect(f, Some(region), Some(period));
        }
        // The tops' verdicts are kept always: a problem found at the end
        // (a month missing) is shown with what the top's summaries counted.
        if self.detail || self.is_top(region) || self.report.regions.contains_key(&region) {
            let verdict = self.report.regions.entry(region).or_default();
            verdict.summaries += 1;
            verdict.reported += view.children.len() as u32;
            verdict.expected += view.children_expected;
            // Checked tallies of one region over at most 1,200 months; a sum
            // beyond u64 is left at the last one that fits.
            verdict.total = verdict
                .total
                .checked_add(&view.total)
                .unwrap_or(verdict.total);
        }
        if self.detail || self.trust.anchors().iter().any(|(r, _)| *r == region) {
            self.report
                .names
                .entry(region)
                .or_insert_with(|| view.name.clone());
        }
        if self.is_top(region) {
            self.report.names.insert(region, view.name.clone());
            let figures = MonthFigures {
                revision: view.revision,
                digest,
                total: view.total,
                children_reported: view.children.len() as u32,
                children_expected: view.children_expected,
            };
            let months = self.report.proven.entry(region).or_default();
            if let Some(other) = months.insert(period, figures) {
                let revision = view.revision;
                self.problem(
                    Some(region),
                    Some(period),
                    format!(
                        "summary {region} {period}: two summaries of the bundle's region for one month (revisions {} and {revision}); a bundle holds the latest only",
                        other.revision
                    ),
                );
            }
        }
        self.seen.insert((region, period));
        self.pending.insert(digest, Found::of(&view, digest));
    }

    /// Finishes the bundle and returns the report.
    pub fn finish(mut self) -> AuditReport {
        self.walk_roots();
        self.admit();
        self.drain();
        for env in std::mem::take(&mut self.receipts) {
            self.check_receipt(&env);
        }
        let leftovers: Vec<Found> = self
            .pending
            .values()
            .filter(|p| !self.is_top(p.region))
            .copied()
            .collect();
        for p in leftovers {
            self.problem(Some(p.region), Some(p.period), format!(
                "summary {} {} revision {}: in the bundle but counted by no summary above it (mixed in)",
                p.region, p.period, p.revision
            ));
        }
        self.check_claim();
        if self.detail {
            for e in self.trust.enrolments() {
                self.report.names.insert(e.region, e.name.clone());
            }
        } else {
            // Names for the paths of the regions with problems only.
            let wanted: Vec<RegionCode> = self
                .report
                .regions
                .keys()
                .flat_map(|r| r.ancestry())
                .collect();
            for r in wanted {
                if let Some(name) = self.trust.name_of(r) {
                    self.report.names.insert(r, name.to_owned());
                }
            }
        }
        self.report
    }
}
