#!/usr/bin/env python3
"""Writes tails.tsv: distribution tails computed by SciPy, the independent
implementation the findings' statistics are checked against
(aggregator/tests/findings_tails.rs). Run from this directory:
    python3 -m pip install scipy && python3 tails.py > tails.tsv
"""
from scipy import stats

print("# distribution\tk\tparameters\ttail\tvalue (SciPy %s)" % __import__("scipy").__version__)
rows = []
for n, p in [(10, 0.3), (50, 0.9), (300, 0.9), (120, 0.75), (2000, 0.93), (40000, 0.91), (25, 0.5)]:
    for k in sorted({0, 1, n // 4, n // 2, int(n * p), int(n * p) + 1, n - 3, n - 1, n}):
        if 0 <= k <= n:
            rows.append(("binomial", k, f"{n} {p}", "upper", stats.binom.sf(k - 1, n, p)))
            rows.append(("binomial", k, f"{n} {p}", "lower", stats.binom.cdf(k, n, p)))
for lam in [0.5, 1.0, 3.2, 10.0, 45.5, 300.0]:
    for k in sorted({0, 1, 2, int(lam), int(lam) + 3, int(2 * lam) + 5, int(4 * lam) + 10}):
        rows.append(("poisson", k, f"{lam}", "upper", stats.poisson.sf(k - 1, lam)))
        rows.append(("poisson", k, f"{lam}", "lower", stats.poisson.cdf(k, lam)))
# Negative binomial by mean and dispersion (variance / mean).
for mean, disp in [(2.0, 1.5), (10.0, 3.0), (40.0, 1.2), (0.8, 2.5)]:
    p = 1.0 / disp
    r = mean * p / (1.0 - p)
    for k in sorted({0, 1, int(mean), int(2 * mean) + 2, int(5 * mean) + 8}):
        rows.append(("negative_binomial", k, f"{mean} {disp}", "upper", stats.nbinom.sf(k - 1, r, p)))
        rows.append(("negative_binomial", k, f"{mean} {disp}", "lower", stats.nbinom.cdf(k, r, p)))
for dist, k, params, tail, value in rows:
    print(f"{dist}\t{k}\t{params}\t{tail}\t{float(value)!r}")
