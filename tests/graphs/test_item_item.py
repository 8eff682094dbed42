import numpy as np
import pytest

from viral.graphs.item_item import item_item_graph, normalize, unit_rows


def cosine(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return unit @ unit.T


def knn_reference(s: np.ndarray, k: int, self_loop: bool) -> list[list[int]]:
    """Brute force: every row fully sorted by (similarity desc, id asc), self handled apart."""
    n = len(s)
    neighbours = []
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: (-s[i, j], j))
        keep = others[: (k - 1 if self_loop else k)] if k > 0 else []
        neighbours.append(([i] if self_loop else []) + keep)
    return neighbours


def normalize_reference(a: np.ndarray, mode: str) -> np.ndarray:
    deg = a.sum(axis=1)
    inv = np.zeros_like(deg)
    if mode == "none":
        return a
    if mode == "row":
        inv[deg > 0] = 1 / deg[deg > 0]
        return inv[:, None] * a
    inv[deg > 0] = 1 / np.sqrt(deg[deg > 0])
    return inv[:, None] * a * inv[None, :]


def reference(features, k, method, image_weight, self_loop, norm):
    n = len(next(iter(features.values())))
    a = np.zeros((n, n))
    if method == "viral_avgsim":
        s = np.mean([cosine(x) for x in features.values()], axis=0)
        for i, row in enumerate(knn_reference(s, k, self_loop)):
            a[i, row] = s[i, row]
    else:
        for name, x in features.items():
            weight = image_weight if name == "visual" else 1 - image_weight
            for i, row in enumerate(knn_reference(cosine(x), k, self_loop)):
                a[i, row] += weight / len(row)
    return normalize_reference(a, norm)


def tied_features(rng, n: int, d: int = 8) -> np.ndarray:
    """Unit vectors with four entries ±0.5: cosines are multiples of 1/4, exact in float32, so ties are real."""
    x = np.zeros((n, d), dtype=np.float32)
    for row in x:
        row[rng.choice(d, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    x[3] = x[1]  # duplicate items: tie at similarity 1
    return x


def random_features(rng, n: int) -> dict[str, np.ndarray]:
    return {"text": rng.normal(size=(n, 6)).astype(np.float32),
            "visual": rng.normal(size=(n, 10)).astype(np.float32)}


@pytest.mark.parametrize("method", ["viral_avgsim", "dragon_weighted"])
@pytest.mark.parametrize("norm", ["sym", "row", "none"])
@pytest.mark.parametrize("self_loop", [True, False])
@pytest.mark.parametrize("kind", ["random", "tied"])
def test_matches_brute_force(method, norm, self_loop, kind):
    rng = np.random.default_rng(7)
    n = 23
    if kind == "random":
        features = random_features(rng, n)
    else:
        features = {"text": tied_features(rng, n), "visual": tied_features(rng, n)}
    kwargs = dict(k=4, method=method, image_weight=0.3, self_loop=self_loop, norm=norm)
    graph = item_item_graph(features, chunk_rows=5, **kwargs)
    expected = reference(features, **kwargs)
    assert graph.dtype == np.float32 and graph.shape == (n, n)
    assert np.array_equal(graph.toarray() != 0, expected != 0), "neighbour sets differ"
    np.testing.assert_allclose(graph.toarray(), expected, atol=1e-6)


def test_tie_break_prefers_lower_item_id():
    # item 0's four candidates all have cosine 1/2; with k=2 (+ self) it must keep items 1 and 2
    x = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 0, 1], [0, 1, 1, 0]], dtype=np.float32)
    graph = item_item_graph({"text": x}, k=3, norm="none", chunk_rows=2)
    assert graph[0].indices.tolist() == [0, 1, 2]
    np.testing.assert_allclose(graph[0].data, [1.0, 0.5, 0.5], atol=1e-6)


def test_chunk_size_does_not_change_the_graph():
    # BLAS may round a block's dot products differently by the last bit, so values are compared to 1e-6
    features = random_features(np.random.default_rng(3), 40)
    graphs = [item_item_graph(features, k=5, chunk_rows=c) for c in (1, 7, 40, 1000)]
    for graph in graphs[1:]:
        assert np.array_equal(graph.indptr, graphs[0].indptr)
        assert np.array_equal(graph.indices, graphs[0].indices)
        np.testing.assert_allclose(graph.data, graphs[0].data, atol=1e-6)


def test_single_modality_and_zero_feature_items():
    x = np.random.default_rng(1).normal(size=(12, 5)).astype(np.float32)
    x[4] = 0  # an item without features: cosine 0 with everything, so an empty row after eliminating zeros
    for method in ("viral_avgsim", "dragon_weighted"):
        graph = item_item_graph({"visual": x}, k=3, method=method, norm="row", chunk_rows=5)
        expected = reference({"visual": x}, 3, method, 1.0, True, "row")
        np.testing.assert_allclose(graph.toarray(), expected, atol=1e-6)
    assert item_item_graph({"visual": x}, k=3, chunk_rows=5)[4].nnz == 0


def test_dragon_default_is_row_stochastic_mean_of_neighbours():
    features = random_features(np.random.default_rng(5), 30)
    graph = item_item_graph(features, k=10, method="dragon_weighted", image_weight=0.1, norm="sym")
    np.testing.assert_allclose(np.asarray(graph.sum(axis=1)).ravel(), 1.0, atol=1e-6)
    # 0.1/10 visual only, 0.9/10 text only, both
    assert np.isclose(graph.data[:, None], [0.01, 0.09, 0.1], atol=1e-6).any(axis=1).all()


def test_k_larger_than_catalog_keeps_every_item():
    features = random_features(np.random.default_rng(2), 4)
    assert item_item_graph(features, k=10, norm="none").nnz == 16
    assert item_item_graph(features, k=10, self_loop=False, norm="none").nnz == 12


def test_unit_rows_and_normalize_edge_cases():
    unit = unit_rows([np.array([[3.0, 4.0], [0.0, 0.0], [0.0, 2.0]]), np.array([[1.0], [-5.0], [0.0]])],
                     chunk_rows=2)
    assert unit.dtype == np.float32
    np.testing.assert_allclose(unit, [[0.6, 0.8, 1.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalize(item_item_graph({"text": unit}, k=1), "l2")


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="same n_items"):
        item_item_graph({"text": np.ones((3, 2)), "visual": np.ones((4, 2))}, k=2)
    with pytest.raises(ValueError, match="no modality"):
        item_item_graph({}, k=2)
    with pytest.raises(ValueError, match="needs a 'visual'"):
        item_item_graph({"text": np.ones((3, 2)), "other": np.ones((3, 2))}, k=2, method="dragon_weighted")
