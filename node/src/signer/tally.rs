//! The local tally of a month, derived from the unit's records as the
//! signer signs it: its cases, its tasks (overdue as of today) and its
//! directly entered figures, read through the layout's typed reads.

use chrono::NaiveDate;
use tallytree_aggregator::Tally;
use tallytree_proto::Month;

use crate::store::{
    Store, StoreError,
    layout::{self, DirectRow},
};

/// The local tally of a month as of `today`: its cases, its tasks and its
/// directly entered figures.
pub fn local_tally(store: &dyn Store, month: Month, today: NaiveDate) -> Result<Tally, StoreError> {
    let mut tally = Tally::default();
    layout::for_each_case(store, month, |case| tally.count_case(&case))?;
    layout::for_each_task(store, month, |task| tally.count_task(&task, today))?;
    let direct = direct_tally(store, month)?;
    tally
        .checked_add(&direct)
        .ok_or_else(|| StoreError::Corrupt {
            cf: "direct",
            reason: format!("month {month}: counts overflow"),
        })
}

/// The directly entered figures of a month.
fn direct_tally(store: &dyn Store, month: Month) -> Result<Tally, StoreError> {
    let mut tally = Tally::default();
    for row in layout::direct_rows(store, month)? {
        match row {
            DirectRow::Cases(category, counts) => *tally.category_mut(category) = counts,
            DirectRow::Tasks(counts) => tally.tasks = counts,
        }
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use tallytree_aggregator::{CaseCounts, CaseRecord, CaseState};
    use tallytree_proto::Category;

    use super::*;
    use crate::store::{Batch, Cf, MemStore, layout::CaseRow};

    #[test]
    fn the_local_tally_adds_the_direct_figures_to_the_records() {
        let store = MemStore::new();
        let march = Month::parse("2025-03").expect("month");
        let day = |d| NaiveDate::from_ymd_opt(2025, 3, d).expect("date");
        let case = CaseRecord {
            category: Category::Land,
            registered_on: day(2),
            state: CaseState::InProgress,
            closed_on: None,
            deadline: day(30),
        };
        let direct = DirectRow::Cases(
            Category::Land,
            CaseCounts {
                registered: 2,
                resolved: 2,
                escalated: 0,
                in_progress: 0,
                resolved_on_time: 1,
            },
        );
        let mut batch = Batch::default();
        let row = prost::Message::encode_to_vec(&CaseRow::from_record(&case));
        batch.put(Cf::Cases, layout::record_key(march, "C-1"), row);
        let slot = layout::direct_key(march, direct.slot());
        batch.put(Cf::Direct, slot, direct.encode());
        store.write(batch).expect("write");

        let tally = local_tally(&store, march, day(31)).expect("tally");
        let land = tally.category(Category::Land);
        assert_eq!(
            (land.registered, land.resolved, land.in_progress),
            (3, 2, 1)
        );
        let april = Month::parse("2025-04").expect("month");
        assert!(
            local_tally(&store, april, day(31))
                .expect("tally")
                .is_zero()
        );
    }
}
