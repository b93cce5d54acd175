//! Periods. A summary covers one month (`YYYY-MM`); a query covers a month, a
//! quarter (`YYYY-Qn`), a year (`YYYY`) or a range (`FROM..TO`), and sums months.

use std::{fmt, str::FromStr};

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// Why a string is not a period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// Not `YYYY-MM` with a month 01..12.
    #[error("period {0:?}: must be a month YYYY-MM (01-12) in years 2000-2999")]
    Month(String),
    /// Not a month, quarter, year or range.
    #[error("period {0:?}: must be YYYY-MM, YYYY-Qn, YYYY or FROM..TO")]
    Range(String),
    /// A range that ends before it starts.
    #[error("period {0:?}: range ends before it starts")]
    Backwards(String),
    /// A range longer than the query limit.
    #[error("period {0:?}: range spans more than {1} months")]
    TooLong(String, u32),
}

/// A calendar month, the period of a summary. Valid by construction.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month(u32);

impl Month {
    /// The month `month` (1-12) of `year` (2000-2999).
    pub fn new(year: i32, month: u32) -> Option<Month> {
        if !(2000..=2999).contains(&year) || !(1..=12).contains(&month) {
            return None;
        }
        // Year is in range, so the cast cannot lose anything.
        Some(Month(year as u32 * 12 + (month - 1)))
    }

    /// Parses `YYYY-MM`.
    pub fn parse(s: &str) -> Result<Month, PeriodError> {
        let err = || PeriodError::Month(s.to_owned());
        let b = s.as_bytes();
        if b.len() != 7 || b[4] != b'-' {
            return Err(err());
        }
        let year: i32 = digits(&s[..4]).ok_or_else(err)?;
        let month: u32 = digits(&s[5..]).ok_or_else(err)?;
        Month::new(year, month).ok_or_else(err)
    }

    /// The month a date falls in.
    pub fn of(date: NaiveDate) -> Option<Month> {
        Month::new(date.year(), date.month())
    }

    /// The calendar year.
    pub fn year(self) -> i32 {
        (self.0 / 12) as i32
    }

    /// The month of the year, 1-12.
    pub fn month(self) -> u32 {
        self.0 % 12 + 1
    }

    /// The month after this one.
    pub fn next(self) -> Month {
        Month(self.0 + 1)
    }

    /// The first day of the month.
    pub fn first_day(self) -> NaiveDate {
        // Year and month are valid by construction.
        NaiveDate::from_ymd_opt(self.year(), self.month(), 1).expect("valid month")
    }

    /// A dense index (months since year 0), used in storage keys.
    pub fn index(self) -> u32 {
        self.0
    }

    /// The inverse of [`Month::index`].
    pub fn from_index(index: u32) -> Option<Month> {
        let m = Month(index);
        Month::new(m.year(), m.month())
    }
}

fn digits<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

impl fmt::Debug for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Month({self})")
    }
}

impl FromStr for Month {
    type Err = PeriodError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Month::parse(s)
    }
}

impl Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Month {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Month::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An inclusive range of months, as given to a query.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PeriodRange {
    /// First month.
    pub from: Month,
    /// Last month, inclusive.
    pub to: Month,
}

impl PeriodRange {
    /// Longest range a query may ask for: 100 years of months.
    pub const MAX_MONTHS: u32 = 1200;

    /// A single month.
    pub fn month(m: Month) -> PeriodRange {
        PeriodRange { from: m, to: m }
    }

    /// Parses `YYYY-MM`, `YYYY-Qn`, `YYYY` or `FROM..TO` (each side any of those).
    pub fn parse(s: &str) -> Result<PeriodRange, PeriodError> {
        let s = s.trim();
        let range = if let Some((a, b)) = s.split_once("..") {
            let from = Self::parse_single(a.trim(), s)?;
            let to = Self::parse_single(b.trim(), s)?;
            PeriodRange {
                from: from.from,
                to: to.to,
            }
        } else {
            Self::parse_single(s, s)?
        };
        if range.to < range.from {
            return Err(PeriodError::Backwards(s.to_owned()));
        }
        if range.len() > Self::MAX_MONTHS {
            return Err(PeriodError::TooLong(s.to_owned(), Self::MAX_MONTHS));
        }
        Ok(range)
    }

    fn parse_single(s: &str, whole: &str) -> Result<PeriodRange, PeriodError> {
        let err = || PeriodError::Range(whole.to_owned());
        if s.len() == 7 && s.as_bytes()[4] == b'-' && s.as_bytes()[5] != b'Q' {
            return Month::parse(s).map(PeriodRange::month).map_err(|_| err());
        }
        if let Some((y, q)) = s.split_once("-Q").or_else(|| s.split_once("-q")) {
            let year: i32 = digits(y).filter(|_| y.len() == 4).ok_or_else(err)?;
            let quarter: u32 = digits(q).filter(|q| (1..=4).contains(q)).ok_or_else(err)?;
            let from = Month::new(year, quarter * 3 - 2).ok_or_else(err)?;
            let to = Month::new(year, quarter * 3).ok_or_else(err)?;
            return Ok(PeriodRange { from, to });
        }
        if s.len() == 4 {
            let year: i32 = digits(s).ok_or_else(err)?;
            let from = Month::new(year, 1).ok_or_else(err)?;
            let to = Month::new(year, 12).ok_or_else(err)?;
            return Ok(PeriodRange { from, to });
        }
        Err(err())
    }

    /// Number of months in the range.
    pub fn len(&self) -> u32 {
        self.to.0 - self.from.0 + 1
    }

    /// Never true: a range holds at least one month.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The months, in order.
    pub fn months(&self) -> impl Iterator<Item = Month> + use<> {
        (self.from.0..=self.to.0).map(Month)
    }

    /// True when `m` lies in the range.
    pub fn contains(&self, m: Month) -> bool {
        self.from <= m && m <= self.to
    }
}

impl fmt::Display for PeriodRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to {
            write!(f, "{}", self.from)
        } else {
            write!(f, "{}..{}", self.from, self.to)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Month {
        Month::parse(s).expect("month")
    }

    #[test]
    fn months_parse_and_print() {
        assert_eq!(m("2026-03").to_string(), "2026-03");
        assert_eq!(m("2026-12").next(), m("2027-01"));
        assert_eq!(Month::from_index(m("2026-07").index()), Some(m("2026-07")));
        for bad in [
            "2026-13",
            "2026-00",
            "2026-3",
            "26-03",
            "2026/03",
            "1999-12",
            "２０２６-03",
        ] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_cover_quarters_years_and_spans() {
        let q = PeriodRange::parse("2026-Q2").expect("quarter");
        assert_eq!((q.from, q.to), (m("2026-04"), m("2026-06")));
        let y = PeriodRange::parse("2026").expect("year");
        assert_eq!(y.len(), 12);
        let r = PeriodRange::parse("2025-11..2026-Q1").expect("range");
        assert_eq!((r.from, r.to), (m("2025-11"), m("2026-03")));
        assert_eq!(r.months().count(), 5);
        assert!(matches!(
            PeriodRange::parse("2026-05..2026-01"),
            Err(PeriodError::Backwards(_))
        ));
        assert!(PeriodRange::parse("2026-Q5").is_err());
        assert!(PeriodRange::parse("last month").is_err());
    }
}
