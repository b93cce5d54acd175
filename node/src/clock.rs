//! The node's notion of now: Unix milliseconds for timestamps, and the date
//! in the unit's own time zone for "today" and "the current month".

use chrono::{FixedOffset, NaiveDate, Utc};
use tallytree_proto::Month;

/// Wall clock with the unit's UTC offset.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// The unit's offset from UTC (China Standard Time is +08:00).
    offset: FixedOffset,
}

impl Clock {
    /// A clock at `offset_hours` from UTC; out-of-range offsets fall back to UTC.
    pub fn new(offset_hours: i32) -> Clock {
        let offset = FixedOffset::east_opt(offset_hours * 3600)
            .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset is valid"));
        Clock { offset }
    }

    /// Unix milliseconds now.
    pub fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis()
    }

    /// Today's date at the unit.
    pub fn today(&self) -> NaiveDate {
        Utc::now().with_timezone(&self.offset).date_naive()
    }

    /// The unit's offset from UTC.
    pub fn offset(&self) -> FixedOffset {
        self.offset
    }

    /// Unix milliseconds as the unit's local date and time.
    pub fn local(&self, ms: i64) -> Option<chrono::DateTime<FixedOffset>> {
        chrono::DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&self.offset))
    }

    /// The first instant (Unix ms) of `date` at the unit.
    pub fn start_of(&self, date: NaiveDate) -> i64 {
        date.and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(self.offset).single())
            .map_or(0, |t| t.timestamp_millis())
    }

    /// The current month at the unit.
    pub fn month(&self) -> Month {
        // Dates of this millennium always map to a month.
        Month::of(self.today()).expect("current date within 2000-2999")
    }
}
