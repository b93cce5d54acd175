//! The demo federation: 辽宁省, two real cities, four real districts, eight
//! streets and thirty-two villages and communities: 47 units.

use tallytree_proto::RegionCode;

/// One unit of the demo tree.
#[derive(Debug, Clone)]
pub struct Unit {
    /// Its code.
    pub code: RegionCode,
    /// Its Chinese name.
    pub name: String,
}

/// A street's name and its four villages' names.
type Street = (&'static str, [&'static str; 4]);

/// Each district's code, name and two streets.
const DISTRICTS: [(&str, &str, [Street; 2]); 4] = [
    (
        "210214000000",
        "普兰店区",
        [
            ("铁西街道", ["玉皇庙社区", "双山社区", "瓦房社区", "赵家村"]),
            ("大谭街道", ["大堡子村", "前进村", "新华社区", "红旗村"]),
        ],
    ),
    (
        "210281000000",
        "瓦房店市",
        [
            ("同益街道", ["东风村", "和平社区", "胜利村", "建设社区"]),
            ("田家街道", ["光明村", "幸福社区", "长兴村", "向阳村"]),
        ],
    ),
    (
        "210283000000",
        "庄河市",
        [
            ("城关街道", ["太平村", "兴隆村", "永安社区", "复兴村"]),
            ("新华街道", ["团结村", "民主社区", "富民村", "丰收村"]),
        ],
    ),
    (
        "211104000000",
        "大洼区",
        [
            ("大洼街道", ["友谊社区", "朝阳村", "金山村", "银河社区"]),
            ("田庄台街道", ["海滨社区", "王家村", "李家村", "张家村"]),
        ],
    ),
];

fn code(s: &str) -> RegionCode {
    // The table above holds valid codes only.
    RegionCode::parse(s).expect("demo codes are valid")
}

/// Every unit, parents before children.
pub fn units() -> Vec<Unit> {
    let mut out = vec![
        Unit {
            code: code("210000000000"),
            name: "辽宁省".into(),
        },
        Unit {
            code: code("210200000000"),
            name: "大连市".into(),
        },
        Unit {
            code: code("211100000000"),
            name: "盘锦市".into(),
        },
    ];
    for (district, name, streets) in DISTRICTS {
        let d = code(district);
        out.push(Unit {
            code: d,
            name: name.into(),
        });
        for (si, (street, villages)) in streets.iter().enumerate() {
            let s = RegionCode::from_u64(d.as_u64() + (si as u64 + 1) * 1000)
                .expect("valid street code");
            out.push(Unit {
                code: s,
                name: (*street).into(),
            });
            for (vi, village) in villages.iter().enumerate() {
                // Communities take 0xx village segments, villages 2xx.
                let seg = if village.ends_with("社区") {
                    1 + vi as u64
                } else {
                    201 + vi as u64
                };
                let v = RegionCode::from_u64(s.as_u64() + seg).expect("valid village code");
                out.push(Unit {
                    code: v,
                    name: (*village).into(),
                });
            }
        }
    }
    out
}

/// One unit per level, 辽宁省 › 大连市 › 普兰店区 › 铁西街道 › 玉皇庙社区: the
/// first child of each, for tests of the demo itself.
pub fn one_per_level() -> Vec<Unit> {
    let all = units();
    let mut out: Vec<Unit> = Vec::new();
    for u in all {
        let first_child = match out.last() {
            None => u.code.parent().is_none(),
            Some(last) => u.code.parent() == Some(last.code),
        };
        if first_child {
            out.push(u);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use tallytree_proto::Level;

    use super::*;

    #[test]
    fn the_tree_has_five_levels_and_every_parent_first() {
        let units = units();
        assert!(units.len() >= 40);
        let mut seen = std::collections::HashSet::new();
        for u in &units {
            if let Some(p) = u.code.parent() {
                assert!(seen.contains(&p), "{} before its parent", u.code);
            }
            seen.insert(u.code);
        }
        assert_eq!(
            units
                .iter()
                .filter(|u| u.code.level() == Level::Village)
                .count(),
            32
        );
        assert_eq!(seen.len(), units.len(), "codes unique");
    }

    #[test]
    fn the_small_tree_is_one_unit_per_level_down_to_the_demo_village() {
        let names: Vec<String> = one_per_level().into_iter().map(|u| u.name).collect();
        assert_eq!(
            names,
            ["辽宁省", "大连市", "普兰店区", "铁西街道", "玉皇庙社区"]
        );
    }
}
