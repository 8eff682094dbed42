import numpy as np
import pytest

from viral.graphs.user_user import co_interaction_lists, sample_user_graph, user_user_graph


def reference(pairs, n_users, n_items, k, weight, pad, seed):
    """Brute force: dense counts, a full sort per user, DRAGON's padding written as a plain loop."""
    r = np.zeros((n_users, n_items))
    r[pairs[:, 0], pairs[:, 1]] = 1
    counts = r @ r.T
    np.fill_diagonal(counts, 0)
    uniforms = np.random.default_rng(seed).random((n_users, k))
    graph = np.zeros((n_users, n_users))
    for u in range(n_users):
        neighbours = sorted((v for v in range(n_users) if counts[u, v] > 0), key=lambda v: (-counts[u, v], v))[:k]
        if not neighbours:
            continue
        slots = list(neighbours)
        if pad == "random":
            while len(slots) < k:
                slots.append(slots[int(uniforms[u, len(slots)] * len(slots))])
        c = np.array([counts[u, v] for v in slots])
        mass = np.exp(c - c.max()) if weight == "softmax" else c
        for v, w in zip(slots, mass / mass.sum()):
            graph[u, v] += w
    return graph


def random_pairs(rng, n_users, n_items, n):
    # users 0 and 1 never interact; item popularity is skewed so counts tie and differ
    items = (rng.zipf(1.6, n) - 1) % n_items
    return np.stack([rng.integers(2, n_users, n), items], axis=1)


@pytest.mark.parametrize("weight", ["softmax", "row_norm"])
@pytest.mark.parametrize("pad", ["none", "random"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_brute_force(weight, pad, seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 30, 20, 6
    pairs = random_pairs(rng, n_users, n_items, 60)
    graph = user_user_graph(pairs, n_users, n_items, k, weight=weight, pad=pad, seed=seed, chunk_rows=7)
    expected = reference(pairs, n_users, n_items, k, weight, pad, seed)
    kept = np.diff(user_user_graph(pairs, n_users, n_items, k).indptr)
    assert ((kept > 0) & (kept < k)).any(), "the data must include users with fewer than k co-users"
    assert graph.dtype == np.float32 and graph.shape == (n_users, n_users)
    assert np.array_equal(graph.toarray() != 0, expected != 0), "neighbour sets differ"
    np.testing.assert_allclose(graph.toarray(), expected, atol=1e-6)
    assert graph[0].nnz == 0 and graph[1].nnz == 0
    assert graph.diagonal().sum() == 0
    sums = np.asarray(graph.sum(axis=1)).ravel()
    np.testing.assert_allclose(sums[sums > 0], 1.0, atol=1e-6)


def test_hand_computed_ties_and_softmax():
    # user 0 shares 2 items with user 3 and 1 item with users 1, 2, 4: k=3 keeps 3, then 1 and 2
    pairs = np.array([[0, 0], [0, 1], [0, 2], [3, 0], [3, 1], [2, 2], [1, 2], [4, 2]])
    graph = user_user_graph(pairs, 5, 3, k=3)
    assert graph[0].indices.tolist() == [1, 2, 3]
    e = np.exp(1.0)
    np.testing.assert_allclose(graph[0].toarray().ravel(), [0, 1 / (2 + e), 1 / (2 + e), e / (2 + e), 0], atol=1e-6)
    row_norm = user_user_graph(pairs, 5, 3, k=3, weight="row_norm")
    np.testing.assert_allclose(row_norm[0].toarray().ravel(), [0, 0.25, 0.25, 0.5, 0], atol=1e-6)


def test_duplicate_pairs_count_once():
    pairs = np.array([[0, 0], [0, 0], [1, 0]])
    graph = user_user_graph(pairs, 2, 1, k=5, weight="row_norm")
    assert graph.toarray().tolist() == [[0, 1], [1, 0]]


@pytest.mark.parametrize("pad", ["none", "random"])
def test_chunk_size_does_not_change_the_graph(pad):
    rng = np.random.default_rng(4)
    pairs = random_pairs(rng, 50, 20, 150)
    graphs = [user_user_graph(pairs, 50, 20, k=6, pad=pad, seed=3, chunk_rows=c) for c in (1, 9, 50, 4096)]
    for graph in graphs[1:]:
        assert (graph != graphs[0]).nnz == 0


def test_random_padding_depends_on_the_seed_only():
    pairs = random_pairs(np.random.default_rng(8), 40, 15, 80)
    a, b, c = (user_user_graph(pairs, 40, 15, k=8, pad="random", seed=s) for s in (1, 1, 2))
    assert (a != b).nnz == 0
    assert (a != c).nnz > 0


def test_no_users():
    graph = user_user_graph(np.zeros((0, 2), dtype=np.int64), 0, 3, k=2)
    assert graph.shape == (0, 0)


def test_bad_options_are_named():
    pairs = np.array([[0, 0], [1, 0]])
    with pytest.raises(ValueError, match="padding 'zeros'"):
        user_user_graph(pairs, 2, 1, k=2, pad="zeros")
    with pytest.raises(ValueError, match="weighting 'mean'"):
        user_user_graph(pairs, 2, 1, k=2, weight="mean")


def test_co_interaction_lists_hold_each_users_best_raw_counts():
    rng = np.random.default_rng(4)
    n_users, n_items = 30, 20
    pairs = random_pairs(rng, n_users, n_items, 70)
    r = np.zeros((n_users, n_items))
    r[pairs[:, 0], pairs[:, 1]] = 1
    counts = r @ r.T
    np.fill_diagonal(counts, 0)
    lists = co_interaction_lists(pairs, n_users, n_items, k=4, chunk_rows=7)
    for u in range(n_users):
        best = sorted((v for v in range(n_users) if counts[u, v] > 0), key=lambda v: (-counts[u, v], v))[:4]
        assert sorted(lists[u].indices) == sorted(best)
        assert [lists[u, v] for v in best] == [counts[u, v] for v in best]


@pytest.mark.parametrize("seed", [1, 2])
def test_dragon_resampled_user_graph_matches_the_brute_force_padding(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 30, 20, 6
    pairs = random_pairs(rng, n_users, n_items, 60)
    lists = co_interaction_lists(pairs, n_users, n_items)
    graph = sample_user_graph(lists, k, np.random.default_rng(seed))
    expected = reference(pairs, n_users, n_items, k, "softmax", "random", seed)
    np.testing.assert_allclose(graph.toarray(), expected, atol=1e-6)


def test_dragon_resampling_differs_between_epochs_and_repeats_with_the_seed():
    rng = np.random.default_rng(0)
    pairs = random_pairs(rng, 30, 20, 60)
    lists = co_interaction_lists(pairs, 30, 20)
    sizes = np.diff(lists.indptr)
    assert ((sizes > 1) & (sizes < 12)).any(), "the data must include short lists of several co-users"
    draws = np.random.default_rng(9)
    first, second = sample_user_graph(lists, 12, draws), sample_user_graph(lists, 12, draws)
    assert (first != second).nnz > 0, "short lists are padded afresh every epoch"
    again = sample_user_graph(lists, 12, np.random.default_rng(9))
    assert (first != again).nnz == 0
    full = sizes >= 12  # users with k or more co-users are never padded: the same every epoch
    assert (first[full] != second[full]).nnz == 0
