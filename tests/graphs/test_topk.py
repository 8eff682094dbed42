import numpy as np
import pytest

from viral.graphs.topk import row_starts, top_k_counts, top_k_entries


def brute_force(rows, cols, values, k):
    kept = []
    for row in sorted(set(rows.tolist())):
        entries = sorted((-v, c) for r, c, v in zip(rows, cols, values) if r == row)[:k]
        kept += [(row, c, -v) for v, c in entries]
    return kept


def as_list(entries):
    return list(zip(entries.rows.tolist(), entries.cols.tolist(), entries.values.tolist()))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 3, 50])
def test_top_k_matches_brute_force_with_many_ties(seed, k):
    rng = np.random.default_rng(seed)
    n = 300
    rows, cols = rng.integers(3, 20, n), rng.permutation(n)  # distinct columns, rows 0-2 absent
    counts = rng.integers(1, 4, n)
    expected = brute_force(rows, cols, counts, k)
    assert as_list(top_k_entries(rows, cols, counts.astype(float), k)) == expected
    assert as_list(top_k_counts(rows, cols, counts, k)) == expected


def test_top_k_counts_falls_back_when_the_packed_key_would_overflow():
    rows, cols, counts = np.array([0, 0, 0, 1]), np.array([2**61, 5, 7, 1]), np.array([1, 1, 2, 1])
    assert as_list(top_k_counts(rows, cols, counts, 2)) == [(0, 7, 2), (0, 5, 1), (1, 1, 1)]


def test_row_starts():
    assert row_starts(np.array([0, 0, 2, 2, 2, 5])).tolist() == [0, 0, 2, 2, 2, 5]
    assert row_starts(np.zeros(0, dtype=np.int64)).tolist() == []
