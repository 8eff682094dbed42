"""Iterative k-core against a brute-force reference on random interaction lists."""
import numpy as np
import pytest

from viral.data.kcore import kcore_mask


def _brute_kcore(pairs: list[tuple[int, int]], k: int) -> set[tuple[int, int]]:
    alive = set(pairs)
    while True:
        user_deg: dict[int, int] = {}
        item_deg: dict[int, int] = {}
        for u, i in alive:
            user_deg[u] = user_deg.get(u, 0) + 1
            item_deg[i] = item_deg.get(i, 0) + 1
        survivors = {(u, i) for u, i in alive if user_deg[u] >= k and item_deg[i] >= k}
        if survivors == alive:
            return alive
        alive = survivors


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [2, 5])
def test_matches_brute_force(seed, k):
    rng = np.random.default_rng(seed)
    n = 3000
    users = rng.zipf(1.6, n) % 400
    items = rng.zipf(1.4, n) % 150
    pairs = sorted(set(zip(users.tolist(), items.tolist())))
    users = np.array([u for u, _ in pairs])
    items = np.array([i for _, i in pairs])
    mask = kcore_mask(users, items, k)
    got = set(zip(users[mask].tolist(), items[mask].tolist()))
    assert got == _brute_kcore(pairs, k)
    assert 0 < len(got) < len(pairs)  # the case is not trivial


def test_cascade_removes_everything_when_nothing_is_dense():
    # A chain: dropping one weak user makes its item weak, and so on.
    users = np.array([0, 0, 1, 1, 2])
    items = np.array([0, 1, 1, 2, 2])
    assert not kcore_mask(users, items, 2).any()


def test_empty_input():
    assert kcore_mask(np.array([], dtype=int), np.array([], dtype=int), 5).shape == (0,)
