"""Summaries and significance tests for comparing runs: mean ± sd over seeds, paired tests over users
(the same users' metric under two models), and Welch's t-test over seeds.

Per-user recall and NDCG are mostly ties (many users score 0 under both models), so the Wilcoxon
signed-rank test follows Wilcoxon's own rule: zero differences are dropped before ranking (scipy's
`zero_method="wilcox"`), and `nonzero` says how many users were left. The paired t-test keeps every
user. Both are two-sided. No correction for multiple comparisons is applied: each table reports one
comparison per metric and dataset.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value, NaN for none)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


@dataclass(frozen=True)
class PairedTest:
    """`a` against `b` over the same users. improvement = mean(a) / mean(b) - 1."""

    n: int
    mean_a: float
    mean_b: float
    improvement: float
    t_statistic: float
    t_p: float
    wilcoxon_statistic: float
    wilcoxon_p: float
    nonzero: int


def paired_t(differences: np.ndarray) -> tuple[float, float]:
    """Student's paired t-test on `differences` (two-sided): t = mean / (sd / sqrt(n)), n - 1 df.
    All differences equal: no evidence either way when they are zero (t = 0, p = 1), certainty otherwise."""
    n = len(differences)
    if n < 2:
        return math.nan, math.nan
    mean, sd = float(differences.mean()), float(differences.std(ddof=1))
    if sd == 0:
        return (0.0, 1.0) if mean == 0 else (math.copysign(math.inf, mean), 0.0)
    t = mean / (sd / math.sqrt(n))
    return t, float(2 * stats.t.sf(abs(t), n - 1))


def wilcoxon(differences: np.ndarray) -> tuple[float, float, int]:
    """Wilcoxon signed-rank test (two-sided, zero differences dropped): (statistic = the smaller of
    the positive and negative rank sums, p, users with a non-zero difference). scipy picks the exact
    null distribution for small samples without ties and the normal approximation otherwise."""
    nonzero = int(np.count_nonzero(differences))
    if nonzero == 0:
        return 0.0, 1.0, 0
    result = stats.wilcoxon(differences, zero_method="wilcox", alternative="two-sided")
    return float(result.statistic), float(result.pvalue), nonzero


def paired_test(a, b) -> PairedTest:
    """Both paired tests of `a` against `b` (aligned arrays: entry i is the same user)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    differences = a - b
    t, t_p = paired_t(differences)
    w, w_p, nonzero = wilcoxon(differences)
    mean_a, mean_b = (float(x.mean()) if len(x) else math.nan for x in (a, b))
    improvement = mean_a / mean_b - 1 if mean_b else math.nan
    return PairedTest(len(a), mean_a, mean_b, improvement, t, t_p, w, w_p, nonzero)


def align_users(a: pd.Series, b: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The values of the users present (and not NaN) in both Series indexed by userID, in userID order."""
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna().sort_index()
    return both["a"].to_numpy(), both["b"].to_numpy()


def welch(a, b) -> tuple[float, float]:
    """Welch's unequal-variance t-test of two sets of per-seed results (two-sided): (t, p). Seeds of two
    models are not paired (the same seed initialises different parameters), hence not a paired test.
    NaN with fewer than two values on a side."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    if a.std(ddof=1) == 0 and b.std(ddof=1) == 0:
        return (0.0, 1.0) if a.mean() == b.mean() else (math.copysign(math.inf, a.mean() - b.mean()), 0.0)
    result = stats.ttest_ind(a, b, equal_var=False)
    return float(result.statistic), float(result.pvalue)
