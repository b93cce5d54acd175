//! Receipts against roll-ups: a parent that gave a receipt for a child's
//! revision and then counts an older revision, another digest, or nothing
//! of that child, is caught by its own signatures.

use std::collections::HashMap;

use tallytree_proto::{Digest, Month, RegionCode, pb, statement};

use super::Auditor;

/// (child, month) → (revision, digest prefix) as counted by a parent. A
/// digest prefix of 8 bytes keeps a national bundle's 600,000 entries
/// small; a receipt naming the same revision with a digest that differs
/// only after 8 bytes is beyond forging (SHA-256).
#[derive(Debug, Default)]
pub(super) struct Counted(HashMap<(RegionCode, Month), (u64, u64)>);

impl Counted {
    /// Notes what a verified roll-up counts of `child`, whatever becomes
    /// of the child's own summary.
    pub(super) fn count(
        &mut self,
        child: RegionCode,
        month: Month,
        revision: u64,
        digest: &Digest,
    ) {
        self.0.insert((child, month), (revision, prefix(digest)));
    }
}

/// The first 8 bytes of a digest.
fn prefix(d: &Digest) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d.0[..8]);
    u64::from_be_bytes(b)
}

impl Auditor {
    /// Verifies a receipt with the key of the parent it names, and compares
    /// it with what that parent counted.
    pub(super) fn check_receipt(&mut self, env: &pb::Envelope) {
        let Ok(claimed) = statement::peek_unverified::<pb::Receipt>(env) else {
            self.problem(None, None, "receipt: payload is not a receipt".into());
            return;
        };
        let Ok(parent) = RegionCode::parse(&claimed.parent) else {
            self.problem(
                None,
                None,
                format!("receipt: parent {:?} is not a region code", claimed.parent),
            );
            return;
        };
        let signer = match self.trust.signer_of::<pb::Receipt>(env, "receipt") {
            Ok(s) if s.region == parent => s,
            Ok(_) => {
                self.problem(
                    Some(parent),
                    None,
                    format!("receipt from {parent}: signed by a key not enrolled for {parent}"),
                );
                return;
            }
            Err(f) => {
                self.problem(Some(parent), None, format!("receipt from {parent}: {f}"));
                return;
            }
        };
        let receipt: pb::Receipt = match signer.open(env, "receipt") {
            Ok(r) => r,
            Err(f) => {
                self.problem(Some(parent), None, f.to_string());
                return;
            }
        };
        let (Ok(child), Ok(period)) = (
            RegionCode::parse(&receipt.region),
            Month::parse(&receipt.period),
        ) else {
            self.problem(
                Some(parent),
                None,
                format!("receipt from {parent}: malformed region or period"),
            );
            return;
        };
        let Some(digest) = Digest::from_slice(&receipt.digest) else {
            self.problem(
                Some(parent),
                Some(period),
                format!("receipt from {parent}: digest must be 32 bytes"),
            );
            return;
        };
        let at = Some(period);
        match self.counted.0.get(&(child, period)).copied() {
            Some((rev, d)) if rev == receipt.revision && d == prefix(&digest) => {}
            Some((rev, _)) if rev == receipt.revision => self.problem(Some(parent), at, format!(
                "summary {parent} {period}: counts {child} revision {rev} with another digest than the one {parent} gave a receipt for (equivocation)"
            )),
            Some((rev, _)) if rev < receipt.revision => self.problem(Some(parent), at, format!(
                "summary {parent} {period}: counts {child} revision {rev}, but {parent} gave a receipt for revision {} (an older revision passed off as the latest)",
                receipt.revision
            )),
            Some(_) => {}
            None if self.seen.contains(&(parent, period)) => self.problem(Some(parent), at, format!(
                "summary {parent} {period}: leaves out {child}, though {parent} gave a receipt for its revision {} (suppression)",
                receipt.revision
            )),
            None => {}
        }
    }
}
