//! The dispute categories: a fixed list, versioned so that a summary states
//! which list its tallies use.

use std::fmt;

use crate::pb;

/// Version of the category list below; signed into every summary.
pub const CATEGORY_LIST_VERSION: u32 = 1;

/// A dispute category (矛盾纠纷类别).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// 婚姻家庭
    MarriageFamily,
    /// 邻里
    Neighbour,
    /// 物业
    Property,
    /// 土地 (incl. farmland and irrigation)
    Land,
    /// 劳动/欠薪 (labour disputes, unpaid wages)
    Labour,
    /// 经济债务
    Debt,
    /// 医疗
    Medical,
    /// 其他
    Other,
}

impl Category {
    /// Every category, in protocol order.
    pub const ALL: [Category; 8] = [
        Category::MarriageFamily,
        Category::Neighbour,
        Category::Property,
        Category::Land,
        Category::Labour,
        Category::Debt,
        Category::Medical,
        Category::Other,
    ];

    /// Number of categories.
    pub const COUNT: usize = Self::ALL.len();

    /// Position in [`Category::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The short English code used in CSV files and JSON.
    pub fn code(self) -> &'static str {
        match self {
            Category::MarriageFamily => "marriage_family",
            Category::Neighbour => "neighbour",
            Category::Property => "property",
            Category::Land => "land",
            Category::Labour => "labour",
            Category::Debt => "debt",
            Category::Medical => "medical",
            Category::Other => "other",
        }
    }

    /// The Chinese label.
    pub fn label(self) -> &'static str {
        match self {
            Category::MarriageFamily => "婚姻家庭",
            Category::Neighbour => "邻里",
            Category::Property => "物业",
            Category::Land => "土地",
            Category::Labour => "劳动/欠薪",
            Category::Debt => "经济债务",
            Category::Medical => "医疗",
            Category::Other => "其他",
        }
    }

    /// Accepts the English code or the Chinese label (and a few common
    /// variants of the label seen in reports).
    pub fn parse(s: &str) -> Option<Category> {
        let s = s.trim();
        Category::ALL
            .into_iter()
            .find(|c| c.code().eq_ignore_ascii_case(s) || c.label() == s)
            .or(match s {
                "婚姻" | "家庭" => Some(Category::MarriageFamily),
                "邻里纠纷" => Some(Category::Neighbour),
                "物业纠纷" => Some(Category::Property),
                "土地/耕地浇水" | "耕地浇水" | "土地纠纷" => Some(Category::Land),
                "劳动争议" | "拖欠工资" | "欠薪" | "劳动争议/拖欠工资" => {
                    Some(Category::Labour)
                }
                "债务" | "经济纠纷" => Some(Category::Debt),
                "医疗纠纷" => Some(Category::Medical),
                _ => None,
            })
    }

    /// The protobuf enum value.
    pub fn to_pb(self) -> pb::Category {
        match self {
            Category::MarriageFamily => pb::Category::MarriageFamily,
            Category::Neighbour => pb::Category::Neighbour,
            Category::Property => pb::Category::Property,
            Category::Land => pb::Category::Land,
            Category::Labour => pb::Category::Labour,
            Category::Debt => pb::Category::Debt,
            Category::Medical => pb::Category::Medical,
            Category::Other => pb::Category::Other,
        }
    }

    /// From the protobuf enum's wire value; `None` for unspecified or unknown.
    pub fn from_pb(value: i32) -> Option<Category> {
        match pb::Category::try_from(value).ok()? {
            pb::Category::Unspecified => None,
            pb::Category::MarriageFamily => Some(Category::MarriageFamily),
            pb::Category::Neighbour => Some(Category::Neighbour),
            pb::Category::Property => Some(Category::Property),
            pb::Category::Land => Some(Category::Land),
            pb::Category::Labour => Some(Category::Labour),
            pb::Category::Debt => Some(Category::Debt),
            pb::Category::Medical => Some(Category::Medical),
            pb::Category::Other => Some(Category::Other),
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_labels_and_wire_values_round_trip() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.code()), Some(c));
            assert_eq!(Category::parse(c.label()), Some(c));
            assert_eq!(Category::from_pb(c.to_pb() as i32), Some(c));
            assert_eq!(Category::ALL[c.index()], c);
        }
        assert_eq!(Category::parse("拖欠工资"), Some(Category::Labour));
        assert_eq!(Category::parse("traffic"), None);
        assert_eq!(Category::from_pb(0), None);
        assert_eq!(Category::from_pb(99), None);
    }
}
