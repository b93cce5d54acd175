//! Offline verification of evidence bundles and inclusion proofs, from the
//! trust anchor down. The checks are [`Trust`]'s and [`SummaryView`]'s, the
//! very ones parents run on submissions; this module streams them over a
//! bundle: signatures checked on several threads in batches, arithmetic in
//! bundle order, keeping only the child totals no parent has consumed yet.

mod proof;
mod report;

pub use proof::{ProofReport, verify_proof};
pub use report::{AuditReport, Problem, RegionVerdict};

use std::collections::{HashMap, HashSet};

use tallytree_proto::{Digest, Month, PublicKey, RegionCode, pb, statement};

use crate::{
    parallel::Pool,
    summary::SummaryView,
    tally::Tally,
    verify::{EnrolmentView, Finding, Signer, Trust},
};

/// Statements handed to the verifying threads at a time.
const BATCH: usize = 256;

/// A verified summary whose parent has not consumed it yet.
#[derive(Debug, Clone)]
struct Pending {
    region: RegionCode,
    revision: u64,
    period: Month,
    total: Tally,
}

/// A statement for the verifying threads, with the key found for it.
enum Job {
    /// `provisional`: signed by a key whose own enrolment is still being
    /// verified.
    Enrolment {
        env: pb::Envelope,
        signer: Signer,
        provisional: bool,
    },
    Summary(pb::Envelope, Signer),
    /// A summary whose key is unknown: only its claims are read.
    Unverifiable(pb::Envelope, Finding),
}

/// What the verifying threads found, handed back in bundle order. Outcomes
/// live a moment, in batches of [`BATCH`]; boxing the large summary view
/// would cost an allocation per summary on the hot path.
#[allow(clippy::large_enum_variant)]
enum Outcome {
    /// With the envelope back when its signer was provisional.
    Enrolment {
        result: Result<EnrolmentView, Finding>,
        signer: Signer,
        provisional: Option<pb::Envelope>,
    },
    Summary(Result<(SummaryView, Digest), Failure>),
}

/// A summary that did not verify, with what it claims to be.
struct Failure {
    finding: Finding,
    digest: Digest,
    claim: Option<(RegionCode, Option<Month>, u64)>,
}

impl Failure {
    fn of(env: &pb::Envelope, finding: Finding) -> Failure {
        Failure {
            finding,
            digest: Digest::of(&env.payload),
            claim: claimed(env),
        }
    }
}

/// Runs on the verifying threads: signatures and per-statement checks, which
/// need the signer's key only, not the whole [`Trust`].
fn work(job: Job) -> Outcome {
    match job {
        Job::Enrolment {
            env,
            signer,
            provisional,
        } => Outcome::Enrolment {
            result: signer.open_enrolment(&env),
            signer,
            provisional: provisional.then_some(env),
        },
        Job::Summary(env, signer) => {
            Outcome::Summary(signer.open_summary(&env).map_err(|f| Failure::of(&env, f)))
        }
        Job::Unverifiable(env, f) => Outcome::Summary(Err(Failure::of(&env, f))),
    }
}

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
    in_flight: HashMap<Digest, Signer>,
    revocations: Vec<pb::Envelope>,
    /// Whether the enrolments and revocations are in (at the first summary).
    admitted: bool,
    receipts: Vec<pb::Envelope>,
    pending: HashMap<Digest, Pending>,
    /// Summaries that did not verify: by digest, and by the region, month
    /// and revision they claim (an altered payload has another digest than
    /// the one its parent references).
    failed: HashSet<Digest>,
    failed_claims: HashSet<(RegionCode, Month, u64)>,
    /// Regions with a summary that did not verify (when its claim cannot
    /// even be decoded, the region of the key that should have signed it).
    failed_regions: HashSet<RegionCode>,
    /// (child, month) → (revision, digest prefix) as counted by a parent;
    /// receipts are compared with it. A digest prefix of 8 bytes keeps a
    /// national bundle's 600,000 entries small; a receipt naming the same
    /// revision with a digest that differs only after 8 bytes is beyond
    /// forging (SHA-256).
    counted: HashMap<(RegionCode, Month), (u64, u64)>,
    /// Keep a verdict for every region (for `--all`), not only for those
    /// with problems.
    detail: bool,
    /// (region, month) of every verified summary.
    seen: HashSet<(RegionCode, Month)>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Job::Enrolment { .. } => "Job::Enrolment",
            Job::Summary(..) => "Job::Summary",
            Job::Unverifiable(..) => "Job::Unverifiable",
        })
    }
}

/// What an unverified summary claims to be, for reporting only.
fn claimed(env: &pb::Envelope) -> Option<(RegionCode, Option<Month>, u64)> {
    let s = statement::decode_verified::<pb::Summary>(env).ok()?;
    let region = RegionCode::parse(&s.region).ok()?;
    Some((region, Month::parse(&s.period).ok(), s.revision))
}

impl Auditor {
    /// An auditor trusting `anchors` (the province keys), checking
    /// signatures on `threads` threads.
    pub fn new(anchors: &[(RegionCode, PublicKey)], threads: usize) -> Auditor {
        let mut trust = Trust::default();
        for (r, k) in anchors {
            trust.add_anchor(*r, *k);
        }
        Auditor {
            trust,
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
            counted: HashMap::new(),
            detail: true,
            seen: HashSet::new(),
        }
    }

    fn problem(&mut self, region: Option<RegionCode>, message: String) {
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

    fn finding(&mut self, f: &Finding, fallback: Option<RegionCode>) {
        let region = finding_region(f).or(fallback);
        self.problem(region, f.to_string());
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
            Some(Item::Header(h)) => self.report.header = Some(h),
            Some(Item::Enrolment(e)) => {
                self.report.enrolments += 1;
                self.enrolment(e);
            }
            Some(Item::Revocation(r)) => self.revocations.push(r),
            Some(Item::Summary(s)) => {
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
            Some(Item::Trailer(_)) | None => {}
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
                        // at the end, where the finding is made.
                        self.retry.push(env);
                        continue;
                    }
                    match result {
                        Ok(view) => self.trust.insert_enrolment(view),
                        Err(f) => self.finding(&f, None),
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
                self.finding(&f, None);
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
        if let Ok(e) = statement::decode_verified::<pb::Enrolment>(&env)
            && let (Ok(region), Ok(key)) = (
                RegionCode::parse(&e.region),
                PublicKey::from_slice(&e.public_key),
            )
        {
            self.in_flight.insert(
                Digest::of(&key.0),
                Signer {
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
        let findings = self.trust.admit_all(&retry, &revocations);
        for f in findings {
            self.finding(&f, None);
        }
    }

    fn failure(&mut self, failure: Failure) {
        let Failure {
            finding,
            digest,
            claim,
        } = failure;
        self.failed.insert(digest);
        if let Some((region, Some(period), revision)) = claim {
            self.failed_claims.insert((region, period, revision));
        }
        if let Some(region) = finding_region(&finding).or(claim.map(|c| c.0)) {
            self.failed_regions.insert(region);
        }
        self.finding(&finding, claim.map(|c| c.0));
    }

    fn check(&mut self, view: SummaryView, digest: Digest) {
        let region = view.region;
        let mut totals = Vec::with_capacity(view.children.len());
        let mut complete = true;
        for c in &view.children {
            // What the parent counts, whatever becomes of the child: receipts
            // are compared with this.
            self.counted
                .insert((c.region, view.period), (c.revision, prefix(&c.digest)));
            match self.pending.remove(&c.digest) {
                Some(p) if p.period != view.period => {
                    complete = false;
                    self.problem(
                        Some(region),
                        format!(
                            "summary {region} {}: child {} is a summary of another period ({})",
                            view.period, c.region, p.period
                        ),
                    );
                }
                Some(p) if p.region != c.region || p.revision != c.revision => {
                    complete = false;
                    self.problem(Some(region), format!(
                        "summary {region} {}: child {} revision {} does not match the summary with its digest",
                        view.period, c.region, c.revision
                    ));
                }
                Some(p) => totals.push(p.total),
                None => {
                    complete = false;
                    let why = if self.failed.contains(&c.digest)
                        || self
                            .failed_claims
                            .contains(&(c.region, view.period, c.revision))
                        || self.failed_regions.contains(&c.region)
                    {
                        "did not verify"
                    } else {
                        "is not in the bundle"
                    };
                    self.problem(
                        Some(region),
                        format!(
                            "summary {region} {}: child {} revision {} {why}",
                            view.period, c.region, c.revision
                        ),
                    );
                }
            }
        }
        if complete && let Err(e) = view.check_total(&totals) {
            self.problem(Some(region), e.to_string());
        }
        let enrolled = self
            .trust
            .enrolled_children(region, view.issued_at_ms)
            .len();
        if view.children_expected as usize != enrolled {
            self.finding(
                &Finding::Completeness {
                    region,
                    period: view.period,
                    stated: view.children_expected,
                    enrolled,
                },
                Some(region),
            );
        }
        if self.detail || self.report.regions.contains_key(&region) {
            let verdict = self.report.regions.entry(region).or_default();
            verdict.summaries += 1;
            verdict.reported += view.children.len() as u32;
            verdict.expected += view.children_expected;
        }
        if self.detail || self.trust.anchors().iter().any(|(r, _)| *r == region) {
            self.report
                .names
                .entry(region)
                .or_insert_with(|| view.name.clone());
        }
        if self
            .report
            .header
            .as_ref()
            .is_some_and(|h| h.region == region.to_string())
        {
            self.report.totals.insert(view.period, view.total);
        }
        self.seen.insert((region, view.period));
        self.pending.insert(
            digest,
            Pending {
                region,
                revision: view.revision,
                period: view.period,
                total: view.total,
            },
        );
    }

    fn check_receipt(&mut self, env: &pb::Envelope) {
        let Ok(claimed) = statement::decode_verified::<pb::Receipt>(env) else {
            self.problem(None, "receipt: payload is not a receipt".into());
            return;
        };
        let Ok(parent) = RegionCode::parse(&claimed.parent) else {
            self.problem(
                None,
                format!("receipt: parent {:?} is not a region code", claimed.parent),
            );
            return;
        };
        let signer = self
            .trust
            .signer_of::<pb::Receipt>(env, "receipt")
            .ok()
            .filter(|s| s.region == parent);
        let Some(signer) = signer else {
            self.problem(
                Some(parent),
                format!("receipt from {parent}: signed by a key not enrolled for {parent}"),
            );
            return;
        };
        let receipt: pb::Receipt = match signer.open(env, "receipt") {
            Ok(r) => r,
            Err(f) => {
                self.problem(Some(parent), f.to_string());
                return;
            }
        };
        let (Ok(child), Ok(period)) = (
            RegionCode::parse(&receipt.region),
            Month::parse(&receipt.period),
        ) else {
            self.problem(
                Some(parent),
                format!("receipt from {parent}: malformed region or period"),
            );
            return;
        };
        let Some(digest) = Digest::from_slice(&receipt.digest) else {
            self.problem(
                Some(parent),
                format!("receipt from {parent}: digest must be 32 bytes"),
            );
            return;
        };
        match self.counted.get(&(child, period)).copied() {
            Some((rev, d)) if rev == receipt.revision && d == prefix(&digest) => {}
            Some((rev, _)) if rev == receipt.revision => self.problem(Some(parent), format!(
                "summary {parent} {period}: counts {child} revision {rev} with another digest than the one {parent} gave a receipt for (equivocation)"
            )),
            Some((rev, _)) if rev < receipt.revision => self.problem(Some(parent), format!(
                "summary {parent} {period}: counts {child} revision {rev}, but {parent} gave a receipt for revision {} (an older revision passed off as the latest)",
                receipt.revision
            )),
            Some(_) => {}
            None if self.seen.contains(&(parent, period)) => self.problem(Some(parent), format!(
                "summary {parent} {period}: leaves out {child}, though {parent} gave a receipt for its revision {} (suppression)",
                receipt.revision
            )),
            None => {}
        }
    }

    /// Finishes the bundle and returns the report.
    pub fn finish(mut self) -> AuditReport {
        self.admit();
        self.drain();
        for env in std::mem::take(&mut self.receipts) {
            self.check_receipt(&env);
        }
        let top = self
            .report
            .header
            .as_ref()
            .and_then(|h| RegionCode::parse(&h.region).ok());
        // Tops: the bundle's region, or the anchors' regions of a bundle
        // spanning several provinces.
        let anchors: HashSet<RegionCode> = self.trust.anchors().iter().map(|(r, _)| *r).collect();
        let leftovers: Vec<Pending> = self
            .pending
            .values()
            .filter(|p| Some(p.region) != top && !(top.is_none() && anchors.contains(&p.region)))
            .cloned()
            .collect();
        for p in leftovers {
            self.problem(Some(p.region), format!(
                "summary {} {} revision {}: in the bundle but counted by no summary above it (mixed in)",
                p.region, p.period, p.revision
            ));
        }
        if top.is_some() && self.report.totals.is_empty() {
            self.problem(top, "no verified summary of the bundle's region".into());
        }
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

/// The first 8 bytes of a digest.
fn prefix(d: &Digest) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.0[..8]);
    u64::from_be_bytes(b)
}

/// The region a finding concerns, when it names one.
fn finding_region(f: &Finding) -> Option<RegionCode> {
    use crate::summary::SummaryError as S;
    match f {
        Finding::WrongSigner { region, .. }
        | Finding::Revoked { region, .. }
        | Finding::NotYetValid { region, .. }
        | Finding::MissingChild { region, .. }
        | Finding::ChildMismatch { region, .. }
        | Finding::Completeness { region, .. } => Some(*region),
        Finding::Envelope { region, .. } | Finding::Tree { region, .. } => {
            RegionCode::parse(region).ok()
        }
        Finding::Summary(s) => match s {
            S::Parent { region, .. }
            | S::RevisionZero { region }
            | S::CategoryList { region, .. }
            | S::Tally { region, .. }
            | S::Child { region, .. }
            | S::Completeness { region, .. }
            | S::Total { region, .. }
            | S::Period { region, .. }
            | S::FuturePeriod { region, .. } => Some(*region),
            S::Malformed { .. } => None,
        },
        Finding::UnknownKey { .. } => None,
    }
}
