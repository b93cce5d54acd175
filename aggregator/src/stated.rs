//! Hand-made reports as offices write them today state rates next to their
//! counts ("化解率 93.8%") and totals next to their parts. These checks say
//! whether a stated rate can follow from its own counts at the precision it
//! is written in (the GRIM test, Brown and Heathers 2017), whether it was
//! cut rather than rounded (四舍五入), whether it was taken over another
//! base, and whether a total is the sum of its parts, each with the
//! arithmetic shown. All in integers, so no rounding of floating point
//! decides a verdict.

use std::fmt;

/// A rate as a report writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatedRate {
    /// As written, e.g. "93.8%".
    pub text: String,
    /// The digits as an integer in units of the last written place
    /// (93.8% → 938).
    pub scaled: u64,
    /// Decimal places written.
    pub decimals: u32,
    /// Written as a percentage ("%" or a value above 1), else as a
    /// fraction (0.938).
    pub percent: bool,
}

/// Why a rate's text is not a rate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?}: {rule}")]
pub struct RateTextError {
    /// As written.
    pub text: String,
    /// What a rate must look like.
    pub rule: &'static str,
}

impl StatedRate {
    /// Parses "93.8%", "93.8", "0.938" or "100%". A value without "%" is a
    /// percentage when above 1, else a fraction.
    pub fn parse(text: &str) -> Result<StatedRate, RateTextError> {
        let err = |rule| RateTextError {
            text: text.to_owned(),
            rule,
        };
        let trimmed = text.trim();
        let (digits, percent_sign) = match trimmed.strip_suffix(['%', '％']) {
            Some(d) => (d.trim(), true),
            None => (trimmed, false),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
            return Err(err("a rate is digits with an optional decimal point and %"));
        }
        if fraction.len() > 6 || whole.len() > 6 {
            return Err(err("at most 6 digits before and after the decimal point"));
        }
        let decimals = fraction.len() as u32;
        let scaled: u64 = format!("{whole}{fraction}")
            .parse()
            .map_err(|_| err("a rate is digits"))?;
        let percent = percent_sign || scaled > 10u64.pow(decimals);
        let limit = if percent { 100 } else { 1 } * 10u64.pow(decimals);
        if scaled > limit {
            return Err(err("a rate is at most 100%"));
        }
        Ok(StatedRate {
            text: trimmed.to_owned(),
            scaled,
            decimals,
            percent,
        })
    }

    /// 10^decimals × (100 for a percentage, 1 for a fraction): what a
    /// ratio is multiplied by before it is rounded to the written places.
    fn factor(&self) -> u128 {
        u128::from(10u64.pow(self.decimals)) * if self.percent { 100 } else { 1 }
    }

    /// `numerator / base` rounded half up (四舍五入) to the written places.
    pub fn rounded(&self, numerator: u64, base: u64) -> u64 {
        let (k, n) = (u128::from(numerator), u128::from(base));
        ((2 * k * self.factor() + n) / (2 * n)) as u64
    }

    /// `numerator / base` cut to the written places.
    pub fn truncated(&self, numerator: u64, base: u64) -> u64 {
        (u128::from(numerator) * self.factor() / u128::from(base)) as u64
    }

    /// A scaled value written as this rate is written.
    pub fn show(&self, scaled: u64) -> String {
        let p = 10u64.pow(self.decimals);
        let mut s = if self.decimals == 0 {
            (scaled / p).to_string()
        } else {
            format!(
                "{}.{:0width$}",
                scaled / p,
                scaled % p,
                width = self.decimals as usize
            )
        };
        if self.percent {
            s.push('%');
        }
        s
    }
}

/// What is wrong with a stated rate, with the arithmetic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RateProblem {
    /// Stated with a zero base.
    NoBase,
    /// Cut rather than rounded: the counts round to `rounded`.
    Truncated {
        /// What rounding the counts gives.
        rounded: u64,
    },
    /// The stated numerator over another base gives it: the rate was not
    /// taken over the stated base.
    OtherBase {
        /// A base that gives the stated rate.
        base: u64,
    },
    /// No rounding of the stated counts gives it at its precision; the
    /// nearest rates the base can give are shown.
    Impossible {
        /// What the stated counts round to.
        rounded: u64,
        /// The nearest attainable rates over the stated base below and
        /// above the stated one, with their numerators.
        below: Option<(u64, u64)>,
        /// See `below`.
        above: Option<(u64, u64)>,
    },
}

/// A stated rate checked against its stated counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateCheck<'a> {
    /// The rate.
    pub rate: &'a StatedRate,
    /// Its stated numerator.
    pub numerator: u64,
    /// Its stated base.
    pub base: u64,
    /// What is wrong, if anything.
    pub problem: Option<RateProblem>,
}

/// Checks `rate` against `numerator / base`: consistent when rounding
/// half up gives it; otherwise cut, over another base, or impossible.
pub fn check_rate(rate: &StatedRate, numerator: u64, base: u64) -> RateCheck<'_> {
    let problem = problem(rate, numerator, base);
    RateCheck {
        rate,
        numerator,
        base,
        problem,
    }
}

fn problem(rate: &StatedRate, numerator: u64, base: u64) -> Option<RateProblem> {
    if base == 0 {
        return Some(RateProblem::NoBase);
    }
    let rounded = rate.rounded(numerator, base);
    if rounded == rate.scaled {
        return None;
    }
    if rate.truncated(numerator, base) == rate.scaled {
        return Some(RateProblem::Truncated { rounded });
    }
    // Another base the numerator could have been divided by: the nearest
    // to the stated one, searched up to twice it.
    let other = (1..=base.saturating_mul(2).max(numerator))
        .filter(|&n| n != base && n >= numerator)
        .filter(|&n| rate.rounded(numerator, n) == rate.scaled)
        .min_by_key(|&n| n.abs_diff(base));
    if let Some(base) = other {
        return Some(RateProblem::OtherBase { base });
    }
    let attainable = |k: u64| (rate.rounded(k, base), k);
    let below = (0..=base)
        .map(attainable)
        .filter(|(r, _)| *r < rate.scaled)
        .max();
    let above = (0..=base)
        .map(attainable)
        .filter(|(r, _)| *r > rate.scaled)
        .min();
    Some(RateProblem::Impossible {
        rounded,
        below,
        above,
    })
}

impl fmt::Display for RateCheck<'_> {
    /// The verdict with its arithmetic, e.g. "93.8% ≠ 45/50 = 90.0%; 45/48
    /// = 93.8%: taken over 48, not 50".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, k, n) = (self.rate, self.numerator, self.base);
        match &self.problem {
            None => write!(f, "{} = {k}/{n}", r.text),
            Some(RateProblem::NoBase) => write!(f, "{}: stated over a base of 0", r.text),
            Some(RateProblem::Truncated { rounded }) => write!(
                f,
                "{} is {k}/{n} cut, not rounded: rounded it is {}",
                r.text,
                r.show(*rounded)
            ),
            Some(RateProblem::OtherBase { base }) => write!(
                f,
                "{} ≠ {k}/{n} = {}; {k}/{base} = {}: taken over {base}, not {n}",
                r.text,
                r.show(r.rounded(k, n)),
                r.show(r.rounded(k, *base))
            ),
            Some(RateProblem::Impossible {
                rounded,
                below,
                above,
            }) => {
                write!(
                    f,
                    "{} ≠ {k}/{n} = {}; no count over {n} gives {}",
                    r.text,
                    r.show(*rounded),
                    r.text
                )?;
                let near: Vec<String> = [below, above]
                    .into_iter()
                    .flatten()
                    .map(|(v, kk)| format!("{kk}/{n} = {}", r.show(*v)))
                    .collect();
                if !near.is_empty() {
                    write!(f, " (nearest: {})", near.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

/// A stated total against its stated parts: `Err` with the sum when they
/// differ.
pub fn check_total(parts: &[u64], total: u64) -> Result<(), u64> {
    let sum = parts.iter().fold(0u64, |a, p| a.saturating_add(*p));
    if sum == total { Ok(()) } else { Err(sum) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(text: &str) -> StatedRate {
        StatedRate::parse(text).expect("a rate")
    }

    #[test]
    fn rates_parse_as_written() {
        let r = rate("93.8%");
        assert_eq!((r.scaled, r.decimals, r.percent), (938, 1, true));
        assert!(!rate("0.938").percent);
        assert_eq!(rate("93.80").decimals, 2);
        assert_eq!(rate("100％").scaled, 100);
        assert!(StatedRate::parse("101%").is_err());
        assert!(StatedRate::parse("九成").is_err());
        assert!(StatedRate::parse("").is_err());
    }

    #[test]
    fn a_rate_rounded_from_its_counts_is_consistent() {
        assert_eq!(check_rate(&rate("90.0%"), 45, 50).problem, None);
        assert_eq!(check_rate(&rate("66.7%"), 2, 3).problem, None);
        // Half up: 1/8 = 12.5% → 13%.
        assert_eq!(check_rate(&rate("13%"), 1, 8).problem, None);
        assert_eq!(check_rate(&rate("0.13"), 1, 8).problem, None);
    }

    #[test]
    fn a_cut_rate_is_named() {
        let r = rate("66.6%");
        let c = check_rate(&r, 2, 3);
        assert_eq!(c.problem, Some(RateProblem::Truncated { rounded: 667 }));
        assert_eq!(
            c.to_string(),
            "66.6% is 2/3 cut, not rounded: rounded it is 66.7%"
        );
    }

    #[test]
    fn a_rate_over_another_base_is_named() {
        let r = rate("93.8%");
        let c = check_rate(&r, 45, 50);
        assert_eq!(c.problem, Some(RateProblem::OtherBase { base: 48 }));
        assert_eq!(
            c.to_string(),
            "93.8% ≠ 45/50 = 90.0%; 45/48 = 93.8%: taken over 48, not 50"
        );
    }

    #[test]
    fn grim_impossible_rates_show_the_nearest_possible() {
        // Over 28, the rates near 73.4% are 20/28 = 71.4% and 21/28 = 75.0%;
        // and 21 over no base gives 73.4% either (21/28.6).
        let r = rate("73.4%");
        let c = check_rate(&r, 21, 28);
        assert_eq!(
            c.problem,
            Some(RateProblem::Impossible {
                rounded: 750,
                below: Some((714, 20)),
                above: Some((750, 21)),
            })
        );
        assert_eq!(
            c.to_string(),
            "73.4% ≠ 21/28 = 75.0%; no count over 28 gives 73.4% (nearest: 20/28 = 71.4%, 21/28 = 75.0%)"
        );
        assert_eq!(check_rate(&r, 3, 0).problem, Some(RateProblem::NoBase));
    }

    proptest::proptest! {
        /// A rate written from its counts, rounded half up at any
        /// precision, is always consistent with them; cut, it is either
        /// consistent (where cutting and rounding agree) or named as cut.
        #[test]
        fn rates_written_from_their_counts_check(n in 1u64..5000, k in 0u64..5000, d in 0u32..4, percent: bool) {
            let k = k % (n + 1);
            let template = StatedRate { text: String::new(), scaled: 0, decimals: d, percent };
            let written = rate(&template.show(template.rounded(k, n)));
            proptest::prop_assert_eq!(check_rate(&written, k, n).problem, None);
            let cut = rate(&template.show(template.truncated(k, n)));
            let verdict = check_rate(&cut, k, n).problem;
            proptest::prop_assert!(
                verdict.is_none() || matches!(verdict, Some(RateProblem::Truncated { .. })),
                "{:?}", verdict
            );
        }
    }

    #[test]
    fn totals_add_up_or_show_their_sum() {
        assert_eq!(check_total(&[3, 4, 5], 12), Ok(()));
        assert_eq!(check_total(&[3, 4, 5], 13), Err(12));
    }
}
