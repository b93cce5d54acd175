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
use tallytree_proto::{Digest, Month, RegionCode};

use crate::store::{
    Store, StoreError,
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

/// What the revision rules say of a verified summary of a direct child.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// A revision above every one held: to be stored.
    New,
    /// A revision already held with the same digest: the same receipt again,
    /// with the time it was first received.
    Duplicate {
        /// When the held revision was received.
        received_at_ms: i64,
    },
    /// A revision held with another digest: two summaries signed for one
    /// revision. Refused, and both kept as evidence.
    Equivocation {
        /// The conflicting row held, of the same revision.
        held: Box<SummaryRow>,
    },
    /// A revision below the latest accepted that this node never held: a
    /// late delivery (a push that outlived its timeout behind a pause or a
    /// partition) of a revision the newer one supersedes. Refused, kept as
    /// nothing: one unit signing revisions 3 and 5 is no conflict.
    Superseded {
        /// The latest revision accepted.
        latest: u64,
    },
}

impl Stripe {
    /// The latest accepted revision of `region` for `month`, from memory or,
    /// the first time, from the store.
    fn latest(
        &mut self,
        store: &dyn Store,
        region: RegionCode,
        month: Month,
    ) -> Result<Option<Accepted>, StoreError> {
        if let Some(held) = self.latest.get(&(region, month)) {
            return Ok(*held);
        }
        let held = match layout::latest_summary(store, region, month)? {
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

    /// Applies the revision rules to a verified summary of a child whose
    /// month this stripe covers. Reads the store only for a revision at or
    /// below the latest (a duplicate of an older one, or an equivocation).
    pub(crate) fn judge(
        &mut self,
        store: &dyn Store,
        view: &SummaryView,
        digest: Digest,
    ) -> Result<Verdict, StoreError> {
        let Some(latest) = self.latest(store, view.region, view.period)? else {
            return Ok(Verdict::New);
        };
        if view.revision > latest.revision {
            return Ok(Verdict::New);
        }
        if view.revision == latest.revision && digest == latest.digest {
            return Ok(Verdict::Duplicate {
                received_at_ms: latest.received_at_ms,
            });
        }
        // At or below the latest: the revision held, if any, decides.
        if let Some(held) = layout::summary_at(store, view.region, view.period, view.revision)? {
            if held.digest()? == digest {
                return Ok(Verdict::Duplicate {
                    received_at_ms: held.received_at_ms,
                });
            }
            return Ok(Verdict::Equivocation {
                held: Box::new(held),
            });
        }
        Ok(Verdict::Superseded {
            latest: latest.revision,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use tallytree_aggregator::Tally;
    use tallytree_proto::{SigningKey, statement};

    use super::*;
    use crate::store::{Batch, Cf, MemStore};

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

    const VILLAGE: u64 = 210_214_001_001;

    fn month() -> Month {
        Month::parse("2026-03").expect("month")
    }

    /// A signed summary of the village for March: its view, digest and row.
    fn summary(key: &SigningKey, revision: u64, registered: u64) -> (SummaryView, Digest, Vec<u8>) {
        let mut local = Tally::default();
        local.tasks.assigned = registered;
        local.tasks.in_progress = registered;
        let view = SummaryView {
            region: RegionCode::from_u64(VILLAGE).expect("code"),
            name: "玉皇庙社区".into(),
            parent: RegionCode::from_u64(VILLAGE).expect("code").parent(),
            period: month(),
            revision,
            issued_at_ms: 1_000 + revision as i64,
            local,
            total: local,
            children: Vec::new(),
            children_expected: 0,
        };
        let signed = statement::seal(key, &view.to_pb());
        let row = layout::summary_row_bytes(&signed.envelope, 5_000 + revision as i64);
        (view, signed.digest, row)
    }

    fn store_row(store: &MemStore, view: &SummaryView, row: Vec<u8>) {
        let mut batch = Batch::default();
        batch.put(
            Cf::Summaries,
            layout::summary_key(view.region, view.period, view.revision),
            row,
        );
        store.write(batch).expect("write");
    }

    #[test]
    fn a_new_revision_is_new_and_the_same_again_a_duplicate() {
        let store = MemStore::new();
        let key = SigningKey::generate().expect("key").0;
        let mut stripe = Stripe::default();
        let (v1, d1, row1) = summary(&key, 1, 3);
        assert!(matches!(stripe.judge(&store, &v1, d1), Ok(Verdict::New)));
        store_row(&store, &v1, row1);
        stripe.stored(
            v1.region,
            v1.period,
            Accepted {
                revision: 1,
                digest: d1,
                received_at_ms: 5_001,
            },
        );
        assert!(matches!(
            stripe.judge(&store, &v1, d1),
            Ok(Verdict::Duplicate {
                received_at_ms: 5_001
            })
        ));
        let (v2, d2, _) = summary(&key, 2, 4);
        assert!(matches!(stripe.judge(&store, &v2, d2), Ok(Verdict::New)));
    }

    #[test]
    fn the_latest_revision_is_read_from_the_store_after_a_restart() {
        let store = MemStore::new();
        let key = SigningKey::generate().expect("key").0;
        let (v1, d1, row1) = summary(&key, 1, 3);
        let (v2, d2, row2) = summary(&key, 2, 4);
        store_row(&store, &v1, row1);
        store_row(&store, &v2, row2);
        // A fresh stripe, as after a start: the rules read what is stored.
        let mut stripe = Stripe::default();
        assert!(matches!(
            stripe.judge(&store, &v2, d2),
            Ok(Verdict::Duplicate {
                received_at_ms: 5_002
            })
        ));
        // An older revision held, the same digest: its own receipt again.
        assert!(matches!(
            stripe.judge(&store, &v1, d1),
            Ok(Verdict::Duplicate {
                received_at_ms: 5_001
            })
        ));
        let (v3, d3, _) = summary(&key, 3, 5);
        assert!(matches!(stripe.judge(&store, &v3, d3), Ok(Verdict::New)));
    }

    #[test]
    fn other_figures_of_a_held_revision_are_equivocation_and_an_unheld_older_one_is_superseded() {
        let store = MemStore::new();
        let key = SigningKey::generate().expect("key").0;
        let (v1, _, row1) = summary(&key, 1, 3);
        let (v3, _, row3) = summary(&key, 3, 5);
        store_row(&store, &v1, row1);
        store_row(&store, &v3, row3);
        let mut stripe = Stripe::default();
        // Revision 1 again with other figures: the held revision 1 conflicts.
        let (other1, od1, _) = summary(&key, 1, 9);
        match stripe.judge(&store, &other1, od1) {
            Ok(Verdict::Equivocation { held }) => {
                assert_eq!(held.view().expect("view").revision, 1)
            }
            other => panic!("expected equivocation, got {other:?}"),
        }
        // Revision 2 never reached this node (a push that arrives after
        // revision 3, behind a pause): superseded, no conflict.
        let (v2, d2, _) = summary(&key, 2, 4);
        match stripe.judge(&store, &v2, d2) {
            Ok(Verdict::Superseded { latest }) => assert_eq!(latest, 3),
            other => panic!("expected superseded, got {other:?}"),
        }
    }
}
