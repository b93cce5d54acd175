//! The statistics the rules use, written once in plain `f64` so that a
//! parent and an auditor compute bit-identical values: tails of the
//! binomial, Poisson and negative-binomial distributions (through the
//! regularized incomplete beta and gamma functions), medians and absolute
//! deviations.
//!
//! Tails are computed directly, never as `1 - cdf`, so the small
//! probabilities the rules compare with thresholds such as 0.001 keep their
//! precision down to about 1e-300.

/// ln Γ(x) for x > 0: Lanczos' approximation (g = 7, 9 terms), with the
/// reflection formula below 0.5. Relative error about 1e-15.
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut sum = C[0];
    for (i, c) in C.iter().enumerate().skip(1) {
        sum += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + sum.ln()
}

/// Iterations of the continued fractions; they converge in far fewer for
/// every argument the rules pass.
const MAX_ITERATIONS: usize = 10_000;
const EPSILON: f64 = 1e-15;
const TINY: f64 = 1e-300;

/// The regularized incomplete beta function I_x(a, b), for a, b > 0 and
/// 0 ≤ x ≤ 1: the continued fraction (modified Lentz) on the side where it
/// converges, so a small result is computed directly rather than as one
/// minus a number close to 1.
pub fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    if x < (a + 1.0) / (a + b + 2.0) {
        beta_front(a, b, x) * beta_fraction(a, b, x) / a
    } else {
        1.0 - beta_front(b, a, 1.0 - x) * beta_fraction(b, a, 1.0 - x) / b
    }
}

/// x^a (1−x)^b / B(a, b), in logarithms.
fn beta_front(a: f64, b: f64, x: f64) -> f64 {
    (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp()
}

/// The continued fraction of I_x(a, b) (Numerical Recipes' `betacf`),
/// evaluated by the modified Lentz method: two terms per iteration.
fn beta_fraction(a: f64, b: f64, x: f64) -> f64 {
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / non_zero(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=MAX_ITERATIONS {
        let m = m as f64;
        let m2 = 2.0 * m;
        let even = m * (b - m) * x / ((qam + m2) * (a + m2));
        h *= lentz_step(&mut c, &mut d, even);
        let odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        let del = lentz_step(&mut c, &mut d, odd);
        h *= del;
        if (del - 1.0).abs() < EPSILON {
            break;
        }
    }
    h
}

/// One term `aa` of a continued fraction 1 + aa/(1 + …) in Lentz's
/// method: updates C and D, returns their product, the factor the
/// fraction's value changes by.
fn lentz_step(c: &mut f64, d: &mut f64, aa: f64) -> f64 {
    *d = 1.0 / non_zero(1.0 + aa * *d);
    *c = non_zero(1.0 + aa / *c);
    *c * *d
}

/// `v`, or a tiny number in its place when it is nearly 0 (Lentz's guard).
fn non_zero(v: f64) -> f64 {
    if v.abs() < TINY { TINY } else { v }
}

/// The regularized lower incomplete gamma function P(a, x) and its
/// complement Q(a, x) = 1 − P(a, x), each computed on its own side: the
/// series where x < a + 1, the continued fraction elsewhere.
fn incomplete_gamma(a: f64, x: f64) -> (f64, f64) {
    if x <= 0.0 {
        return (0.0, 1.0);
    }
    let front = (a * x.ln() - x - ln_gamma(a)).exp();
    if x < a + 1.0 {
        let (mut term, mut sum, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..MAX_ITERATIONS {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * EPSILON {
                break;
            }
        }
        let p = front * sum;
        (p, 1.0 - p)
    } else {
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..=MAX_ITERATIONS {
            let i = i as f64;
            let an = -i * (i - a);
            b += 2.0;
            d = 1.0 / non_zero(an * d + b);
            c = non_zero(b + an / c);
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < EPSILON {
                break;
            }
        }
        let q = front * h;
        (1.0 - q, q)
    }
}

/// P(Z ≥ z) for a standard normal Z: erfc(z/√2)/2, with erfc(y) = Q(½, y²).
pub fn normal_upper(z: f64) -> f64 {
    if z >= 0.0 {
        0.5 * incomplete_gamma(0.5, z * z / 2.0).1
    } else {
        1.0 - normal_upper(-z)
    }
}

/// P(X ≥ k) for X ~ Binomial(n, p).
pub fn binomial_upper(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        1.0
    } else if k > n {
        0.0
    } else {
        incomplete_beta(k as f64, (n - k + 1) as f64, p)
    }
}

/// P(X ≤ k) for X ~ Binomial(n, p).
pub fn binomial_lower(k: u64, n: u64, p: f64) -> f64 {
    if k >= n {
        1.0
    } else {
        incomplete_beta((n - k) as f64, (k + 1) as f64, 1.0 - p)
    }
}

/// P(X ≥ k) for X ~ Poisson(λ).
pub fn poisson_upper(k: u64, lambda: f64) -> f64 {
    if k == 0 {
        1.0
    } else {
        incomplete_gamma(k as f64, lambda).0
    }
}

/// P(X ≤ k) for X ~ Poisson(λ).
pub fn poisson_lower(k: u64, lambda: f64) -> f64 {
    incomplete_gamma((k + 1) as f64, lambda).1
}

/// A count model: Poisson with dispersion 1, else the negative binomial
/// with that mean and variance / mean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CountModel {
    /// Expected count.
    pub mean: f64,
    /// Variance / mean; 1 for Poisson.
    pub dispersion: f64,
}

impl CountModel {
    /// Fits `baseline`, with `mean_floor` as the least mean (a baseline of
    /// zeros still expects a little), or `None` for an empty baseline. The
    /// dispersion is the baseline's where it is beyond chance, else 1,
    /// widened by the uncertainty of the mean, so the model is always a
    /// negative binomial.
    pub fn fit(baseline: &[u64], mean_floor: f64) -> Option<CountModel> {
        if baseline.is_empty() {
            return None;
        }
        let n = baseline.len() as f64;
        let mean = baseline.iter().map(|&v| v as f64).sum::<f64>() / n;
        let variance = if baseline.len() > 1 {
            baseline
                .iter()
                .map(|&v| (v as f64 - mean).powi(2))
                .sum::<f64>()
                / (n - 1.0)
        } else {
            mean
        };
        let mean = mean.max(mean_floor);
        // Only overdispersion beyond chance counts: (n − 1)·φ is about χ²
        // with n − 1 degrees of freedom, mean n − 1, deviation √(2(n − 1)).
        let df = n - 1.0;
        let phi = variance / mean;
        let phi = if df > 0.0 && df * phi > df + 2.0 * (2.0 * df).sqrt() {
            phi
        } else {
            1.0
        };
        // The next count varies about the baseline's mean, which is itself
        // estimated from n counts: its predictive variance is φμ(1 + 1/n).
        Some(CountModel {
            mean,
            dispersion: phi * (1.0 + 1.0 / n),
        })
    }

    /// P(X ≥ k) under the model.
    pub fn upper(&self, k: u64) -> f64 {
        if self.dispersion <= 1.0 {
            return poisson_upper(k, self.mean);
        }
        if k == 0 {
            return 1.0;
        }
        let (r, p) = self.negative_binomial();
        // P(X ≥ k) = I_{1−p}(k, r)
        incomplete_beta(k as f64, r, 1.0 - p)
    }

    /// P(X ≤ k) under the model.
    pub fn lower(&self, k: u64) -> f64 {
        if self.dispersion <= 1.0 {
            return poisson_lower(k, self.mean);
        }
        let (r, p) = self.negative_binomial();
        // P(X ≤ k) = I_p(r, k + 1)
        incomplete_beta(r, (k + 1) as f64, p)
    }

    /// Size r and success probability p of the negative binomial with this
    /// mean and variance (mean = r(1−p)/p, variance = mean/p).
    fn negative_binomial(&self) -> (f64, f64) {
        let p = 1.0 / self.dispersion;
        let r = self.mean * p / (1.0 - p);
        (r, p)
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}

/// The modified z-score of the count `x` against the counts of `history`
/// (Iglewicz and Hoaglin): 0.6745·|x − median| / MAD. The MAD of Poisson
/// counts with mean μ is about 0.6745·√μ; a history's MAD below that (and
/// MAD 0, common for small village counts) is the luck of a short series,
/// so the spread is never taken below 0.6745·√max(median, 1). Returns the
/// score, the median and which spread was used.
pub fn modified_z(x: f64, history: &[f64]) -> Option<(f64, f64, Spread)> {
    let centre = median(history)?;
    let deviations: Vec<f64> = history.iter().map(|v| (v - centre).abs()).collect();
    let mad = median(&deviations)?;
    let poisson = 0.6745 * centre.max(1.0).sqrt();
    let spread = if mad >= poisson {
        Spread::Mad(mad)
    } else {
        Spread::Poisson(poisson)
    };
    Some((0.6745 * (x - centre).abs() / spread.value(), centre, spread))
}

/// Which spread a modified z-score divided by.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Spread {
    /// The history's median absolute deviation.
    Mad(f64),
    /// The Poisson floor, the history's MAD being smaller.
    Poisson(f64),
}

impl Spread {
    /// The value divided by.
    pub fn value(self) -> f64 {
        match self {
            Spread::Mad(v) | Spread::Poisson(v) => v,
        }
    }
}

/// The plain z-score |x − mean| / σ (population standard deviation), as
/// DHIS2's outlier detection computes it.
pub fn z_score(x: f64, mean: f64, sd: f64) -> f64 {
    (x - mean).abs() / sd
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        a == b || ((a - b) / b).abs() < rel
    }

    #[test]
    fn ln_gamma_of_integers_is_ln_factorial() {
        let mut factorial = 1.0f64;
        for n in 1..30u32 {
            assert!(close(
                ln_gamma(n as f64 + 1.0),
                (factorial * n as f64).ln(),
                1e-13
            ));
            factorial *= n as f64;
        }
        assert!(close(
            ln_gamma(0.5),
            std::f64::consts::PI.sqrt().ln(),
            1e-13
        ));
    }

    #[test]
    fn binomial_tails_equal_the_sum_of_their_terms() {
        // Summed term by term in logarithms: an implementation that shares
        // nothing with the incomplete beta function.
        fn pmf(k: u64, n: u64, p: f64) -> f64 {
            (ln_gamma(n as f64 + 1.0) - ln_gamma(k as f64 + 1.0) - ln_gamma((n - k) as f64 + 1.0)
                + k as f64 * p.ln()
                + (n - k) as f64 * (1.0 - p).ln())
            .exp()
        }
        for &(n, p) in &[(10u64, 0.3), (50, 0.9), (300, 0.9), (7, 0.5), (1000, 0.02)] {
            for k in 0..=n {
                let upper: f64 = (k..=n).map(|j| pmf(j, n, p)).sum();
                let lower: f64 = (0..=k).map(|j| pmf(j, n, p)).sum();
                assert!(close(binomial_upper(k, n, p), upper, 1e-9), "{k}/{n} {p}");
                assert!(close(binomial_lower(k, n, p), lower, 1e-9), "{k}/{n} {p}");
            }
        }
    }

    #[test]
    fn three_hundred_of_three_hundred_against_ninety_percent() {
        // 0.9^300
        let p = binomial_upper(300, 300, 0.9);
        assert!(close(p, 0.9f64.powi(300), 1e-12), "{p}");
        assert!(p < 1e-13);
    }

    #[test]
    fn normal_tail_at_known_quantiles() {
        assert!(close(normal_upper(0.0), 0.5, 1e-15));
        // The upper 99.8 % and 97.5 % points.
        assert!(close(normal_upper(3.090_232_306_167_813), 0.001, 1e-9));
        assert!(close(normal_upper(1.959_963_984_540_054), 0.025, 1e-9));
        assert!(close(normal_upper(-1.959_963_984_540_054), 0.975, 1e-12));
    }

    #[test]
    fn modified_z_and_its_poisson_floor() {
        // MAD 4 (deviations 8 4 0 4 8) is above the floor 0.6745·√10.
        let (z, centre, spread) = modified_z(30.0, &[2.0, 6.0, 10.0, 14.0, 18.0]).unwrap();
        assert_eq!((centre, spread), (10.0, Spread::Mad(4.0)));
        assert!(close(z, 0.6745 * 20.0 / 4.0, 1e-15));
        // MAD 0: the Poisson floor.
        let (z, centre, spread) = modified_z(10.0, &[2.0, 4.0, 4.0, 4.0, 5.0]).unwrap();
        assert_eq!((centre, spread), (4.0, Spread::Poisson(0.6745 * 2.0)));
        assert!(close(z, 6.0 / 2.0, 1e-15));
        // A history of zeros: the floor of a mean of 1.
        let (z, _, spread) = modified_z(6.0, &[0.0; 12]).unwrap();
        assert_eq!(spread, Spread::Poisson(0.6745));
        assert!(close(z, 6.0, 1e-15));
        assert_eq!(modified_z(3.0, &[]), None);
    }

    #[test]
    fn dhis2_z_score_example() {
        // docs.dhis2.org, outlier detection: value 9000, mean 1524.5555,
        // standard deviation 2654.4661 give z 2.8161.
        let z = z_score(9000.0, 1524.5555, 2654.4661);
        // (2.816176…: the documentation shows it cut, not rounded, to
        // four places.)
        assert_eq!((z * 10_000.0).floor() / 10_000.0, 2.8161);
        // and, at threshold 2.5, the bounds -5111.6097 and 8160.7208.
        let (lower, upper) = (1524.5555 - 2.5 * 2654.4661, 1524.5555 + 2.5 * 2654.4661);
        assert!((lower - -5111.6097_f64).abs() < 1e-4 && (upper - 8160.7208_f64).abs() < 1e-4);
    }
}
