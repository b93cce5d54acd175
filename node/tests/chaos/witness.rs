//! The driver's record of every receipt seen, and the invariant it checks.

#![allow(dead_code)]

use super::*;

/// Receipt `env`, decoded without checking its signature.
pub(crate) fn receipt_of(env: &pb::Envelope) -> pb::Receipt {
    statement::peek_unverified(env).expect("a receipt")
}

/// The receipts the node `at` (of `region`) holds from its parent for
/// `month`, as its auditor exports them.
pub(crate) async fn held_receipts(
    at: &Remote,
    region: RegionCode,
    month: Month,
) -> Result<Vec<pb::Envelope>, Status> {
    let fetch = async {
        let mut items = AuditClient::new(at.with_token(AUDITOR_TOKEN))
            .max_decoding_message_size(256 << 20)
            .export_evidence(pb::ExportEvidenceRequest {
                region: String::new(),
                period: month.to_string(),
            })
            .await?
            .into_inner();
        let mut out = Vec::new();
        while let Some(item) = items.message().await? {
            if let Some(pb::evidence_item::Item::Receipt(env)) = item.item {
                // The bundle also carries the receipts a parent gave its own
                // children.
                if receipt_of(&env).region == region.to_string() {
                    out.push(env);
                }
            }
        }
        Ok(out)
    };
    tokio::time::timeout(CALL_TIMEOUT, fetch)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("export took too long")))
}

/// The receipts held in a stopped node's store.
pub(crate) async fn stored_receipts(data_dir: &Path) -> Vec<pb::Envelope> {
    let store = open_store(data_dir).await;
    layout::envelopes(&store, Cf::Receipts, b"").expect("receipts")
}

/// Every stored revision of `region`'s summary for `month` at `at`, oldest
/// first, decoded (not verified), as its auditor reads them.
pub(crate) async fn revisions_at(
    at: &Remote,
    region: RegionCode,
    month: Month,
) -> Result<Vec<(pb::Envelope, SummaryView)>, Status> {
    // A long run keeps thousands of revisions.
    let mut client =
        AuditClient::new(at.with_token(AUDITOR_TOKEN)).max_decoding_message_size(256 << 20);
    let call = client.revisions(pb::RevisionsRequest {
        region: region.to_string(),
        period: month.to_string(),
    });
    let envs = tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("revisions took too long")))?
        .into_inner()
        .summaries;
    Ok(envs
        .into_iter()
        .map(|env| {
            let s: pb::Summary = statement::peek_unverified(&env).expect("a summary");
            let view = SummaryView::from_pb(&s).expect("a valid summary");
            (env, view)
        })
        .collect())
}

/// [`revisions_at`], panicking when the node does not answer.
pub(crate) async fn revisions(
    at: &Remote,
    region: RegionCode,
    month: Month,
) -> Vec<(pb::Envelope, SummaryView)> {
    revisions_at(at, region, month)
        .await
        .unwrap_or_else(|s| panic!("revisions of {region} at {}: {s:?}", at.addr))
}

/// Err unless the revisions are strictly increasing: one stored summary
/// per revision.
pub(crate) fn one_per_revision(held: &[(pb::Envelope, SummaryView)]) -> Result<(), String> {
    let revs: Vec<u64> = held.iter().map(|(_, v)| v.revision).collect();
    if revs.windows(2).all(|w| w[0] < w[1]) {
        Ok(())
    } else {
        Err(format!("more than one summary per revision: {revs:?}"))
    }
}

/// The driver's own record of every receipt it has seen a child hold, and
/// what it found wrong.
#[derive(Default)]
pub(crate) struct Witness {
    /// Child, month and revision to the digest the receipt names.
    seen: BTreeMap<(RegionCode, Month, u64), Digest>,
    /// Receipts checked against a parent (counting each check).
    pub(crate) checked: u64,
    /// Every violation found, in words.
    pub(crate) violations: Vec<String>,
}

impl Witness {
    /// A witness.
    pub(crate) fn new() -> Witness {
        Witness::default()
    }

    /// Checks the equivocation evidence a stopped node keeps, given the
    /// summaries it `held`: no child may have signed two summaries of one
    /// revision (every child here signs each revision once), and nothing
    /// the node never held may be kept (a superseded revision arriving
    /// after a later one is no conflict).
    pub(crate) fn judge_evidence(
        &mut self,
        node: &Proc,
        held: &BTreeMap<(RegionCode, Month, u64), Digest>,
        evidence: &[pb::Envelope],
    ) {
        let mut kept: BTreeMap<(RegionCode, Month, u64), BTreeSet<Digest>> = BTreeMap::new();
        for env in evidence {
            let s: pb::Summary = statement::peek_unverified(env).expect("a summary");
            let view = SummaryView::from_pb(&s).expect("a valid summary");
            kept.entry((view.region, view.period, view.revision))
                .or_default()
                .insert(Digest::of(&env.payload));
        }
        let refusals: Vec<String> = node
            .log()
            .lines()
            .filter(|l| l.contains("equivocation refused"))
            .map(str::to_owned)
            .collect();
        for ((region, month, revision), digests) in kept {
            let held_digest = held.get(&(region, month, revision));
            let twice = digests.len() > 1 || held_digest.is_some_and(|h| !digests.contains(h));
            if twice {
                self.violation(format!(
                    "{}: {region} signed revision {revision} of {month} twice ({digests:?}, held {held_digest:?}); its log: {refusals:#?}",
                    node.label
                ));
            } else if held_digest.is_none() {
                let what = format!(
                    "{} keeps {region}'s revision {revision} of {month} ({}), which it never held, as evidence of equivocation",
                    node.label,
                    digests.iter().next().map(Digest::short).unwrap_or_default()
                );
                self.violation(what);
            }
        }
        if !refusals.is_empty() {
            eprintln!("{}: {refusals:#?}", node.label);
        }
    }

    /// Records a violation (and prints it at once).
    pub(crate) fn violation(&mut self, what: String) {
        eprintln!("VIOLATION: {what}");
        self.violations.push(what);
    }

    /// Notes `receipts` held by `child`: each must be signed by its parent
    /// (`parent_key`), be for `child`, and name the digest a receipt seen
    /// earlier for the same revision named.
    pub(crate) fn note(
        &mut self,
        child: RegionCode,
        parent_key: &PublicKey,
        receipts: &[pb::Envelope],
    ) {
        for env in receipts {
            let r: pb::Receipt = match statement::open(env, parent_key) {
                Ok(r) => r,
                Err(e) => {
                    self.violation(format!(
                        "{child} holds a receipt its parent did not sign: {e}"
                    ));
                    continue;
                }
            };
            let (Ok(month), Some(digest)) =
                (Month::parse(&r.period), Digest::from_slice(&r.digest))
            else {
                self.violation(format!("{child} holds a malformed receipt: {r:?}"));
                continue;
            };
            if r.region != child.to_string() {
                self.violation(format!("{child} holds a receipt for {}", r.region));
                continue;
            }
            let before = self.seen.insert((child, month, r.revision), digest);
            if let Some(b) = before.filter(|b| *b != digest) {
                self.violation(format!(
                    "{child}: the receipt for revision {} of {month} named {}, now {}",
                    r.revision,
                    b.short(),
                    digest.short()
                ));
            }
        }
    }

    /// Checks that `receipts` (what `child` holds now, read `how`) still
    /// has every receipt noted for it.
    pub(crate) fn still_held(&mut self, child: RegionCode, receipts: &[pb::Envelope], how: &str) {
        let now: BTreeSet<(Month, u64)> = receipts
            .iter()
            .map(receipt_of)
            .filter_map(|r| Some((Month::parse(&r.period).ok()?, r.revision)))
            .collect();
        let lost: Vec<(Month, u64)> = self
            .noted(child)
            .into_iter()
            .map(|((_, m, r), _)| (m, r))
            .filter(|k| !now.contains(k))
            .collect();
        if !lost.is_empty() {
            self.violation(format!(
                "{child} no longer holds receipts it held ({how}): {lost:?}"
            ));
        }
    }

    /// The receipts noted for `child`.
    pub(crate) fn noted(&self, child: RegionCode) -> Vec<((RegionCode, Month, u64), Digest)> {
        self.seen
            .iter()
            .filter(|((c, _, _), _)| *c == child)
            .map(|(k, d)| (*k, *d))
            .collect()
    }

    /// Receipts noted, all children.
    pub(crate) fn receipts(&self) -> usize {
        self.seen.len()
    }

    /// Checks every receipt noted for `child` against what its parent `at`
    /// holds: the summary of that revision with that digest.
    pub(crate) async fn check_parent(&mut self, at: &Remote, child: RegionCode) {
        let months: BTreeSet<Month> = self.noted(child).iter().map(|((_, m, _), _)| *m).collect();
        for month in months {
            let held = match revisions_at(at, child, month).await {
                Ok(h) => h
                    .iter()
                    .map(|(env, v)| (v.revision, Digest::of(&env.payload)))
                    .collect::<Vec<_>>(),
                Err(s) => {
                    self.violation(format!(
                        "the parent of {child} does not answer for its revisions: {s:?}"
                    ));
                    continue;
                }
            };
            let revs: Vec<u64> = held.iter().map(|(r, _)| *r).collect();
            if !revs.windows(2).all(|w| w[0] < w[1]) {
                self.violation(format!(
                    "the parent of {child} holds more than one summary for a revision: {revs:?}"
                ));
            }
            for ((_, m, revision), digest) in self.noted(child) {
                if m != month {
                    continue;
                }
                self.checked += 1;
                if !held.contains(&(revision, digest)) {
                    self.violation(format!(
                        "{child} holds a receipt for revision {revision} of {month} ({}) that its parent does not hold (it holds {revs:?})",
                        digest.short()
                    ));
                }
            }
        }
    }
}
