"""Paired tests over users and Welch's test over seeds against scipy, a brute-force exact Wilcoxon and
hand-computed values."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from viral.report.stats import align_users, mean_sd, paired_t, paired_test, welch, wilcoxon


def exact_wilcoxon_p(differences) -> float:
    """Two-sided exact p by enumerating every sign assignment of the ranks (no ties, no zeros)."""
    d = np.asarray(differences, dtype=float)
    ranks = stats.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    total = ranks.sum()
    sums = np.array([sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product((0, 1), repeat=len(d))])
    extreme = min(observed, total - observed)
    return min(1.0, 2 * np.mean(sums <= extreme))


def test_mean_and_sample_sd_by_hand():
    assert mean_sd([0.1, 0.2, 0.3]) == pytest.approx((0.2, 0.1))  # sqrt((0.01 + 0 + 0.01) / 2)
    assert mean_sd([0.5]) == (0.5, 0.0)
    assert all(math.isnan(x) for x in mean_sd([]))


def test_paired_t_by_hand_and_against_scipy():
    a = np.array([0.30, 0.25, 0.00, 0.50, 0.10, 0.40])
    b = np.array([0.20, 0.25, 0.00, 0.30, 0.15, 0.10])
    d = a - b  # 0.1, 0, 0, 0.2, -0.05, 0.3: mean 0.0917, sd 0.1201
    t = d.mean() / (d.std(ddof=1) / math.sqrt(6))
    assert paired_t(d)[0] == pytest.approx(t)
    reference = stats.ttest_rel(a, b)
    result = paired_test(a, b)
    assert (result.t_statistic, result.t_p) == pytest.approx((reference.statistic, reference.pvalue))
    assert result.n == 6 and result.improvement == pytest.approx(a.mean() / b.mean() - 1)


def test_wilcoxon_drops_zero_differences_like_scipy_and_counts_the_rest():
    # Many users tie at zero under both models (no hit), as per-user recall does.
    a = np.array([0, 0, 0, 0, 0.5, 0.25, 1.0, 0.2, 0.1, 0.05, 0.3, 0.0])
    b = np.array([0, 0, 0, 0, 0.25, 0.5, 0.5, 0.0, 0.0, 0.0, 0.1, 0.4])
    reference = stats.wilcoxon(a - b, zero_method="wilcox")
    result = paired_test(a, b)
    assert (result.wilcoxon_statistic, result.wilcoxon_p) == pytest.approx((reference.statistic, reference.pvalue))
    assert result.nonzero == 8


def test_wilcoxon_matches_the_exact_null_distribution_by_enumeration():
    d = np.array([0.9, -0.1, 0.45, 0.3, 0.7, -0.25, 0.8, 0.05, 0.6])  # distinct |d|: no ties
    statistic, p, nonzero = wilcoxon(d)
    # |d| ranks: 0.05 1, 0.1 2, 0.25 3, 0.3 4, ...; the negative differences hold ranks 2 and 3.
    assert (statistic, nonzero) == (5.0, 9)
    assert p == pytest.approx(exact_wilcoxon_p(d))  # 20 of 512 sign patterns reach a sum <= 5
    assert p == pytest.approx(20 / 512)


def test_no_difference_at_all_is_p_one_and_a_constant_shift_is_p_zero():
    a = np.array([0.25, 0.0, 0.5])  # binary fractions: the shifted differences are exactly equal
    same = paired_test(a, a)
    assert (same.t_p, same.wilcoxon_p, same.nonzero) == (1.0, 1.0, 0)
    shifted = paired_test(a + 0.25, a)
    assert shifted.t_p == 0.0 and shifted.t_statistic == math.inf
    with pytest.raises(ValueError, match="differ in length"):
        paired_test(a, a[:2])


def test_welch_against_scipy_and_with_too_few_seeds():
    a, b = [0.245, 0.251, 0.239], [0.232, 0.228, 0.241, 0.236]
    reference = stats.ttest_ind(a, b, equal_var=False)
    assert welch(a, b) == pytest.approx((reference.statistic, reference.pvalue))
    assert all(math.isnan(x) for x in welch([0.2], b))
    assert welch([0.2, 0.2], [0.1, 0.1]) == (math.inf, 0.0)


def test_align_users_pairs_by_user_id_and_drops_missing_values():
    a = pd.Series([0.1, 0.2, np.nan, 0.4], index=[3, 1, 2, 7])
    b = pd.Series([0.5, 0.6, 0.7], index=[1, 2, 3])
    left, right = align_users(a, b)
    assert left.tolist() == [0.2, 0.1] and right.tolist() == [0.5, 0.7]  # users 1 and 3, in userID order
