"""The user-item graph blocks of viral.models.layers (MMGCN's mean aggregation, GRCN's graph with
learned edge weights) against dense references, values and gradients."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from viral.models.layers import EdgeGraph, bipartite_pattern, mean_adjacency

PAIRS = np.array([[0, 0], [0, 2], [1, 2], [2, 1], [2, 2], [0, 0]])  # (0, 0) twice; user 3, item 3 alone
N_USERS, N_ITEMS = 4, 4


def _dense_pattern() -> np.ndarray:
    a = np.zeros((8, 8), dtype=np.float32)
    for u, i in PAIRS:
        a[u, N_USERS + i] = a[N_USERS + i, u] = 1.0
    return a


def test_bipartite_pattern_is_the_two_way_binary_graph():
    assert np.array_equal(bipartite_pattern(PAIRS, N_USERS, N_ITEMS).toarray(), _dense_pattern())


def test_mean_adjacency_averages_the_neighbours():
    a = _dense_pattern()
    degree = a.sum(1, keepdims=True)
    expected = np.divide(a, degree, out=np.zeros_like(a), where=degree > 0)
    assert np.allclose(mean_adjacency(PAIRS, N_USERS, N_ITEMS).toarray(), expected)


def _edge_graph(seed: int = 0, shape: tuple[int, int] = (9, 7)) -> tuple[EdgeGraph, np.ndarray]:
    pattern = sp.random(*shape, density=0.35, random_state=seed, format="csr")
    return EdgeGraph(pattern), pattern.toarray() != 0


def _dense(graph: EdgeGraph, values: torch.Tensor) -> torch.Tensor:
    return graph.csr(values).to_dense()


def test_edges_are_numbered_in_csr_order_and_the_transpose_carries_their_values():
    graph, mask = _edge_graph()
    target, source = np.nonzero(mask)  # row-major = CSR order
    assert np.array_equal(graph.row.numpy(), target) and np.array_equal(graph.col.numpy(), source)
    values = torch.rand(len(target), dtype=torch.float64)
    assert torch.equal(graph.csr_t(values).to_dense(), _dense(graph, values).T)


@pytest.mark.parametrize("shape", [(9, 7), (8, 8)])
def test_scores_softmax_and_propagate_match_dense_references(shape):
    graph, mask = _edge_graph(1, shape)
    a = torch.randn(shape[0], 5, dtype=torch.float64)
    b = torch.randn(shape[1], 5, dtype=torch.float64)
    scores = graph.scores(a, b)
    assert torch.allclose(scores, (a @ b.T)[graph.row, graph.col])
    attention = graph.softmax(scores * 3)
    dense_attention = torch.softmax((3 * a @ b.T).masked_fill(~torch.from_numpy(mask), float("-inf")), dim=1)
    assert torch.allclose(_dense(graph, attention), dense_attention.nan_to_num(0.0))  # an empty row stays 0
    weights = torch.rand(len(scores), dtype=torch.float64)
    assert torch.allclose(graph.propagate(weights, b), _dense(graph, weights) @ b)


def test_gradients_match_finite_differences():
    graph, mask = _edge_graph(2)
    a = torch.randn(mask.shape[0], 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(mask.shape[1], 4, dtype=torch.float64, requires_grad=True)
    weights = torch.rand(int(mask.sum()), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w, b: graph.propagate(w, b), (weights, b))
    assert torch.autograd.gradcheck(graph.scores, (a, b))
    assert torch.autograd.gradcheck(lambda a, b: graph.softmax(graph.scores(a, b)), (a, b))
    square, _ = _edge_graph(3, (6, 6))  # one table on both ends: both gradient paths add up
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: square.propagate(square.softmax(square.scores(x, x)), x), (x,))


def test_a_node_without_edges_gets_nothing():
    graph = EdgeGraph(bipartite_pattern(PAIRS, N_USERS, N_ITEMS))
    x = torch.randn(8, 3)
    out = graph.propagate(graph.softmax(graph.scores(x, x)), x)
    assert torch.equal(out[3], torch.zeros(3)) and torch.equal(out[N_USERS + 3], torch.zeros(3))
