"""Fixtures for the Analysis tests, from SciPy (no torch needed):
    python3 Scripts/gen_stats_fixtures.py        # needs numpy and scipy (pip install numpy scipy)

- correlations.json: Pearson, Spearman and Kendall τ-b with ties;
- statistics.json: exact binomial tests and Wilson intervals (scipy.stats.binomtest), and a paired
  percentile bootstrap of |ρ_s(AP2, PD)| − |ρ_s(AP3, PD)| over configurations
  (scipy.stats.bootstrap, paired=True) for the AP2-vs-AP3 comparison.
"""
import json
import os

import numpy as np
import scipy.stats as st

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "AnalysisTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(20261126)

cases = []
for n, ties in [(5, False), (12, True), (30, True), (60, False)]:
    x = rng.normal(size=n)
    y = 0.6 * x + rng.normal(size=n)
    if ties:
        x = np.round(x, 0)
        y = np.round(y * 2, 0) / 2
    cases.append({"x": x.tolist(), "y": y.tolist(),
                  "pearson": st.pearsonr(x, y)[0], "spearman": st.spearmanr(x, y)[0],
                  "kendall": st.kendalltau(x, y, variant="b")[0]})
with open(os.path.join(OUT, "correlations.json"), "w") as f:
    json.dump(cases, f, indent=1)

binomial = []
for k, n, p0 in [(9, 9, 0.5), (7, 10, 0.5), (3, 12, 1 / 6), (0, 5, 0.5), (18, 18, 1 / 6), (5, 20, 0.25)]:
    r = st.binomtest(k, n, p0)
    ci = r.proportion_ci(confidence_level=0.95, method="wilson")
    binomial.append({"k": k, "n": n, "p0": p0, "p": r.pvalue, "wilson": [ci.low, ci.high]})

# The paired comparison: 12 configurations, one trial each; AP3 ranks differ from AP2's.
rng2 = np.random.default_rng(7)
ap2 = np.sort(rng2.uniform(0.1, 10, size=12))
ap3 = ap2 ** 0.5 + rng2.normal(0, 0.6, size=12)
pd_ = ap2 + rng2.normal(0, 1.5, size=12) + 3   # positive, as |PD| is


def difference(a, b, c):
    return abs(st.spearmanr(a, c)[0]) - abs(st.spearmanr(b, c)[0])


boot = st.bootstrap((ap2, ap3, pd_), difference, paired=True, vectorized=False, method="percentile",
                    n_resamples=50000, random_state=np.random.default_rng(1))
paired = {"ap2": ap2.tolist(), "ap3": ap3.tolist(), "pd": pd_.tolist(), "difference": difference(ap2, ap3, pd_),
          "ci95": [boot.confidence_interval.low, boot.confidence_interval.high]}
with open(os.path.join(OUT, "statistics.json"), "w") as f:
    json.dump({"binomial": binomial, "paired_bootstrap": paired}, f, indent=1)
print("wrote", OUT)
