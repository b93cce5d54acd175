//! The revision rules of one child and month, and the lock that serialises
//! them: the same digest again gets the same receipt; a revision at or below
//! one accepted, with another digest, is refused and both are kept as
//! evidence of equivocation.
//!
//! The lock is striped over (child, month), and each stripe holds the
//! latest accepted revision of the children and months it covers, so a new
//! revision, the common case, is checked without reading the store. The
//! entry is filled from the store the first time a child and month is seen
//! after a start, and updated only after a revision is stored, under the
//! stripe; only Submit stores a direct child's summaries.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard},
};

use tallytree_aggregator::SummaryView;
use tallytree_proto::{Digest, Month, RegionCode, pb};
use tracing::warn;

use super::{Federation, submit::SubmitError};
use crate::store::{
    Batch, Cf, StoreError,
    layout::{self, SummaryRow},
};

/// Stripes of the per-(child, month) lock.
const STRIPES: usize = 64;

/// The latest accepted revision of one child and month.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Accepted {
    /// Its revision.
    pub(crate) revision: u64,
    /// Its payload digest.
    pub(crate) digest: Digest,
    /// When it was received (its receipt's time).
    pub(crate) received_at_ms: i64,
}

/// One stripe: the latest accepted revisions it covers, `None` where the
/// store holds no revision yet.
#[derive(Debug, Default)]
pub(crate) struct Stripe {
    latest: HashMap<(RegionCode, Month), Option<Accepted>>,
}

/// The striped lock over (child, month).
#[derive(Debug)]
pub(crate) struct Stripes(Vec<Mutex<Stripe>>);

impl Stripes {
    /// Empty stripes.
    pub(crate) fn new() -> Stripes {
        Stripes((0..STRIPES).map(|_| Mutex::default()).collect())
    }

    /// Locks the stripe of a child's month.
    pub(crate) fn lock(&self, region: RegionCode, month: Month) -> MutexGuard<'_, Stripe> {
        // A stripe's map is updated in single statements after the store
        // write; a panic elsewhere cannot leave it half-updated.
        self.0[stripe_index(region, month)]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

/// The stripe of a child's month. Region codes are decimal (siblings differ
/// by 1, 1,000, 1,000,000 or 100,000,000), so the code is mixed (the
/// SplitMix64 finaliser) before it picks the stripe: the code modulo 64
/// would put a district's streets, 1,000 apart, on 8 stripes only.
fn stripe_index(region: RegionCode, month: Month) -> usize {
    let mut x = region.as_u64() ^ u64::from(month.index()).rotate_left(40);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % STRIPES as u64) as usize
}

impl Stripe {
    /// The latest accepted revision of `region` for `month`, from memory or,
    /// the first time, from the store.
    fn latest(
        &mut self,
        fed: &Federation,
        region: RegionCode,
        month: Month,
    ) -> Result<Option<Accepted>, StoreError> {
        if let Some(held) = self.latest.get(&(region, month)) {
            return Ok(*held);
        }
        let held = match layout::latest_summary(fed.ledger.store(), region, month)? {
            Some(row) => Some(Accepted {
                revision: row.view()?.revision,
                digest: row.digest()?,
                received_at_ms: row.received_at_ms,
            }),
            None => None,
        };
        self.latest.insert((region, month), held);
        Ok(held)
    }

    /// Records a revision just stored.
    pub(crate) fn stored(&mut self, region: RegionCode, month: Month, accepted: Accepted) {
        self.latest.insert((region, month), Some(accepted));
    }
}

impl Federation {
    /// Applies the revision rules to a verified summary under its stripe:
    /// `Some(receipt)` for a revision already held with the same digest,
    /// `None` for a new revision, an equivocation error otherwise (both
    /// summaries kept as evidence).
    pub(crate) fn check_revision(
        &self,
        stripe: &mut Stripe,
        view: &SummaryView,
        digest: Digest,
        env: &pb::Envelope,
    ) -> Result<Option<pb::Envelope>, SubmitError> {
        let Some(latest) = stripe.latest(self, view.region, view.period)? else {
            return Ok(None);
        };
        if view.revision > latest.revision {
            return Ok(None);
        }
        if view.revision == latest.revision && digest == latest.digest {
            return Ok(Some(self.issue_receipt(
                view,
                digest,
                latest.received_at_ms,
            )));
        }
        // At or below the latest: the revision held, if any, decides.
        let store = self.ledger.store();
        if let Some(held) = layout::summary_at(store, view.region, view.period, view.revision)? {
            if held.digest()? == digest {
                return Ok(Some(self.issue_receipt(view, digest, held.received_at_ms)));
            }
            return Err(self.equivocation(view, digest, env, &held)?);
        }
        let latest_row =
            layout::latest_summary(store, view.region, view.period)?.ok_or_else(|| {
                StoreError::Corrupt {
                    cf: "summaries",
                    reason: format!(
                        "revision {} of {} {} held in memory but not stored",
                        latest.revision, view.region, view.period
                    ),
                }
            })?;
        Err(self.equivocation(view, digest, env, &latest_row)?)
    }

    fn equivocation(
        &self,
        view: &SummaryView,
        digest: Digest,
        env: &pb::Envelope,
        held: &SummaryRow,
    ) -> Result<SubmitError, StoreError> {
        let held_view = held.view()?;
        let held_digest = held.digest()?;
        let mut batch = Batch::default();
        batch.put(
            Cf::Evidence,
            layout::evidence_key(view.region, view.period, &digest),
            layout::envelope_bytes(env),
        );
        batch.put(
            Cf::Evidence,
            layout::evidence_key(view.region, view.period, &held_digest),
            layout::envelope_bytes(held.envelope()?),
        );
        self.ledger.store().write(batch)?;
        warn!(child = %view.region, period = %view.period, revision = view.revision, held = held_view.revision, "equivocation refused");
        Ok(SubmitError::Equivocation {
            region: view.region,
            period: view.period,
            revision: view.revision,
            digest: digest.short(),
            held: held_view.revision,
            held_digest: held_digest.short(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use tallytree_proto::{Month, RegionCode};

    use super::{STRIPES, stripe_index};

    /// Siblings at every level (codes 1, 1,000, 1,000,000 or 100,000,000
    /// apart) spread over the stripes, so concurrent children rarely wait
    /// for each other.
    #[test]
    fn siblings_spread_over_the_stripes() {
        let month = Month::from_index(24_300).expect("month");
        for (parent, step) in [
            (210_000_000_000u64, 100_000_000u64),
            (210_200_000_000, 1_000_000),
            (210_214_000_000, 1_000),
            (210_214_001_000, 1),
        ] {
            let stripes: HashSet<usize> = (1..=STRIPES as u64)
                .filter_map(|i| RegionCode::from_u64(parent + i * step).ok())
                .map(|code| stripe_index(code, month))
                .collect();
            assert!(
                stripes.len() >= STRIPES / 2,
                "children of {parent} {step} apart use {} of {STRIPES} stripes",
                stripes.len()
            );
        }
    }
}
