import numpy as np
import pytest

from viral.graphs.user_item import interaction_matrix, normalized_adjacency


def dense_reference(pairs: np.ndarray, n_users: int, n_items: int) -> np.ndarray:
    """Brute force: dense bipartite adjacency, then D^-1/2 A D^-1/2 with 0 for isolated nodes."""
    n = n_users + n_items
    a = np.zeros((n, n))
    for u, i in pairs:
        a[u, n_users + i] = 1.0
        a[n_users + i, u] = 1.0
    deg = a.sum(axis=1)
    inv = np.zeros(n)
    inv[deg > 0] = 1.0 / np.sqrt(deg[deg > 0])
    return inv[:, None] * a * inv[None, :]


@pytest.mark.parametrize("seed", range(5))
def test_matches_dense_reference_with_duplicates_and_isolated_nodes(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items = 9, 7
    # users 0 and items 0 never interact: isolated nodes must keep empty rows
    pairs = np.stack([rng.integers(1, n_users, 40), rng.integers(1, n_items, 40)], axis=1)
    adj = normalized_adjacency(pairs, n_users, n_items)
    assert adj.shape == (16, 16)
    assert adj.dtype == np.float32
    np.testing.assert_allclose(adj.toarray(), dense_reference(pairs, n_users, n_items), atol=1e-6)
    assert adj[0].nnz == 0 and adj[n_users].nnz == 0
    assert (adj != adj.T).nnz == 0


def test_hand_computed_values():
    # user 0 -> items 0, 1; user 1 -> item 1. |N_u0|=2, |N_u1|=1, |N_i0|=1, |N_i1|=2
    adj = normalized_adjacency(np.array([[0, 0], [0, 1], [1, 1]]), 2, 2).toarray()
    assert adj[0, 2] == pytest.approx(1 / np.sqrt(2))
    assert adj[0, 3] == pytest.approx(1 / 2)
    assert adj[1, 3] == pytest.approx(1 / np.sqrt(2))
    assert adj[1, 2] == 0


def test_empty_pairs_give_empty_graph():
    adj = normalized_adjacency(np.zeros((0, 2), dtype=np.int64), 3, 4)
    assert adj.shape == (7, 7) and adj.nnz == 0


@pytest.mark.parametrize(
    "pairs, message",
    [
        (np.array([[0, 5]]), "item id 5 outside"),
        (np.array([[-1, 0]]), "user id -1 outside"),
        (np.array([0, 1]), "shape"),
        (np.array([[0.0, 1.0]]), "integer"),
    ],
)
def test_bad_pairs_are_named(pairs, message):
    with pytest.raises(ValueError, match=message):
        interaction_matrix(pairs, 2, 3)
