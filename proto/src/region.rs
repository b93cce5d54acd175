//! Region codes: the 12-digit statistical division codes (统计用区划代码).
//!
//! Segments: 2 digits province, 2 city, 2 county, 3 township, 3 village. The
//! parent of a code is the code with its lowest non-zero segment zeroed.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// The administrative level of a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// 省
    Province,
    /// 市
    City,
    /// 区 / 县 / 县级市
    District,
    /// 街道 / 乡镇
    Street,
    /// 村 / 社区
    Village,
}

impl Level {
    /// The lowercase English word used in the protocol and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Province => "province",
            Level::City => "city",
            Level::District => "district",
            Level::Street => "street",
            Level::Village => "village",
        }
    }

    /// The Chinese word for the level.
    pub fn label(self) -> &'static str {
        match self {
            Level::Province => "省",
            Level::City => "市",
            Level::District => "区县",
            Level::Street => "街道乡镇",
            Level::Village => "村社区",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a region code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    /// Not exactly twelve ASCII digits.
    #[error("region code {0:?}: must be exactly 12 digits")]
    Format(String),
    /// The province segment is 00.
    #[error("region code {0}: province segment (first 2 digits) must not be 00")]
    NoProvince(String),
    /// A lower segment is set below a zero segment.
    #[error("region code {0}: a segment below a zero segment must be zero")]
    Gap(String),
}

/// A 12-digit region code, valid by construction.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegionCode(u64);

/// Multipliers of the segments, most significant first: province, city,
/// county, township, village.
const SEGMENTS: [(u64, u64); 5] = [
    (10_000_000_000, 100),
    (100_000_000, 100),
    (1_000_000, 100),
    (1_000, 1_000),
    (1, 1_000),
];

impl RegionCode {
    /// Parses a 12-digit code.
    pub fn parse(s: &str) -> Result<Self, RegionError> {
        if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionError::Format(s.to_owned()));
        }
        let value = s
            .bytes()
            .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
        Self::from_u64(value).map_err(|e| match e {
            RegionError::Format(_) => RegionError::Format(s.to_owned()),
            other => other,
        })
    }

    /// Builds a code from its numeric value (as stored in keys).
    pub fn from_u64(value: u64) -> Result<Self, RegionError> {
        if value >= 1_000_000_000_000 {
            return Err(RegionError::Format(value.to_string()));
        }
        let code = RegionCode(value);
        let segs = code.segments();
        if segs[0] == 0 {
            return Err(RegionError::NoProvince(code.to_string()));
        }
        let mut seen_zero = false;
        for seg in segs {
            if seg == 0 {
                seen_zero = true;
            } else if seen_zero {
                return Err(RegionError::Gap(code.to_string()));
            }
        }
        Ok(code)
    }

    /// The numeric value, used in storage keys (big-endian sorts by code).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    fn segments(self) -> [u64; 5] {
        SEGMENTS.map(|(mul, modulo)| (self.0 / mul) % modulo)
    }

    /// The administrative level, from the lowest non-zero segment.
    pub fn level(self) -> Level {
        let segs = self.segments();
        match segs.iter().rposition(|&s| s != 0) {
            Some(4) => Level::Village,
            Some(3) => Level::Street,
            Some(2) => Level::District,
            Some(1) => Level::City,
            _ => Level::Province,
        }
    }

    /// The parent unit; `None` for a province.
    pub fn parent(self) -> Option<RegionCode> {
        let segs = self.segments();
        let lowest = segs.iter().rposition(|&s| s != 0)?;
        if lowest == 0 {
            return None;
        }
        let (mul, _) = SEGMENTS[lowest];
        Some(RegionCode(self.0 - segs[lowest] * mul))
    }

    /// True when `self` is a direct child of `parent`.
    pub fn is_direct_child_of(self, parent: RegionCode) -> bool {
        self.parent() == Some(parent)
    }

    /// True when `self` lies in the subtree of `ancestor` (itself included).
    pub fn is_within(self, ancestor: RegionCode) -> bool {
        let mut cur = Some(self);
        while let Some(code) = cur {
            if code == ancestor {
                return true;
            }
            cur = code.parent();
        }
        false
    }

    /// The chain from `self` up to the province, `self` first.
    pub fn ancestry(self) -> impl Iterator<Item = RegionCode> {
        std::iter::successors(Some(self), |c| c.parent())
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012}", self.0)
    }
}

impl fmt::Debug for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionCode({self})")
    }
}

impl FromStr for RegionCode {
    type Err = RegionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for RegionCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RegionCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn code(s: &str) -> RegionCode {
        RegionCode::parse(s).expect("valid code")
    }

    #[test]
    fn levels_and_parents_follow_the_liaoning_tree() {
        let province = code("210000000000");
        let dalian = code("210200000000");
        let pulandian = code("210214000000");
        let street = code("210214001000");
        let village = code("210214001001");
        assert_eq!(province.level(), Level::Province);
        assert_eq!(dalian.level(), Level::City);
        assert_eq!(pulandian.level(), Level::District);
        assert_eq!(street.level(), Level::Street);
        assert_eq!(village.level(), Level::Village);
        assert_eq!(village.parent(), Some(street));
        assert_eq!(street.parent(), Some(pulandian));
        assert_eq!(pulandian.parent(), Some(dalian));
        assert_eq!(dalian.parent(), Some(province));
        assert_eq!(province.parent(), None);
        assert!(village.is_direct_child_of(street));
        assert!(!village.is_direct_child_of(pulandian));
        assert!(village.is_within(province));
        assert!(!village.is_within(code("211100000000")));
        assert_eq!(village.ancestry().count(), 5);
    }

    #[test]
    fn malformed_codes_are_refused_with_the_rule() {
        for bad in [
            "21020000000",
            "2102000000000",
            "21020000000a",
            "",
            "２１０２００００００００",
        ] {
            assert!(
                matches!(RegionCode::parse(bad), Err(RegionError::Format(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            RegionCode::parse("000200000000"),
            Err(RegionError::NoProvince(_))
        ));
        assert!(matches!(
            RegionCode::parse("210000001000"),
            Err(RegionError::Gap(_))
        ));
        let msg = RegionCode::parse("21x").unwrap_err().to_string();
        assert!(msg.contains("12 digits"), "{msg}");
    }

    proptest! {
        #[test]
        fn display_round_trips(p in 1u64..100, c in 0u64..100, d in 0u64..100, t in 0u64..1000, v in 0u64..1000) {
            let segs = [p, c, d, t, v];
            // Zero everything below the first zero segment so the code is valid.
            let mut value = 0;
            let mut zero = false;
            for (i, s) in segs.iter().enumerate() {
                if *s == 0 { zero = true; }
                if !zero { value += s * SEGMENTS[i].0; }
            }
            let code = RegionCode::from_u64(value).expect("valid");
            prop_assert_eq!(RegionCode::parse(&code.to_string()).expect("round trip"), code);
            if let Some(parent) = code.parent() {
                prop_assert!(code.is_direct_child_of(parent));
                prop_assert!(parent.level() < code.level());
            }
        }
    }
}
