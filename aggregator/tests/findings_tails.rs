//! The findings' distribution tails against SciPy's (tests/vectors/tails.tsv,
//! written by tests/vectors/tails.py): an independent implementation of the
//! binomial, Poisson and negative-binomial distributions.

use tallytree_aggregator::findings::stats::{
    CountModel, binomial_lower, binomial_upper, poisson_lower, poisson_upper,
};

#[test]
fn tails_agree_with_scipy() {
    let text = include_str!("vectors/tails.tsv");
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [dist, k, params, tail, want] = fields[..] else {
            panic!("malformed line {line:?}");
        };
        let k: u64 = k.parse().unwrap();
        let want: f64 = want.parse().unwrap();
        let params: Vec<f64> = params.split(' ').map(|p| p.parse().unwrap()).collect();
        let got = match (dist, tail) {
            ("binomial", "upper") => binomial_upper(k, params[0] as u64, params[1]),
            ("binomial", "lower") => binomial_lower(k, params[0] as u64, params[1]),
            ("poisson", "upper") => poisson_upper(k, params[0]),
            ("poisson", "lower") => poisson_lower(k, params[0]),
            ("negative_binomial", t) => {
                let model = CountModel {
                    mean: params[0],
                    dispersion: params[1],
                };
                if t == "upper" {
                    model.upper(k)
                } else {
                    model.lower(k)
                }
            }
            other => panic!("unknown distribution {other:?}"),
        };
        // Relative agreement; tails below 1e-290 sit near the end of f64's
        // range, where only the order of magnitude is meaningful.
        let ok = if want < 1e-290 {
            got < 1e-280
        } else {
            got == want || ((got - want) / want).abs() < 1e-9
        };
        assert!(ok, "{line}: got {got:e}");
        checked += 1;
    }
    assert!(checked > 200, "only {checked} vectors");
}
