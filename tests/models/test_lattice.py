"""LATTICE against a dense brute-force reference written here: the learned graph (dense similarity, dense
top-k, dense D^-1/2 S D^-1/2), its mix with the original graphs, LightGCN, the loss and every gradient;
plus the per-epoch rebuild, the switches, and a short run through the engine."""
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.train.conftest import random_data
from viral.graphs.item_item import item_item_graph
from viral.graphs.user_item import normalized_adjacency
from viral.models import model_class
from viral.models.base import ModelInputs, half_squared_l2, mean_feature
from viral.models.lattice import LATTICE, Config, random_walk_with_self_loops
from viral.models.layers import knn_columns, neighbour_sum
from viral.train.config import TrainConfig
from viral.train.data import add_graphs
from viral.train.loop import build_model, fit

K = 4


def tiny_inputs(seed: int = 0, n_users: int = 30, n_items: int = 25) -> ModelInputs:
    rng = np.random.default_rng(seed)
    pairs = np.unique(np.stack([rng.integers(0, n_users, 200), rng.integers(0, n_items, 200)], 1), axis=0)
    features = {"visual": rng.normal(size=(n_items, 20)).astype(np.float32),
                "text": rng.normal(size=(n_items, 12)).astype(np.float32)}
    graphs = {"ui": normalized_adjacency(pairs, n_users, n_items)}
    for name, matrix in features.items():  # the graphs stage's ii_lattice_<modality>
        graphs[f"ii_lattice_{name}"] = item_item_graph({name: matrix}, K, self_loop=True, norm="sym")
    return ModelInputs(n_users, n_items, pairs, features, graphs)


def make(inputs: ModelInputs, seed: int = 0, **overrides) -> LATTICE:
    torch.manual_seed(seed)
    return LATTICE(inputs, Config(embedding_dim=8, feat_embed_dim=6, knn_k=K, chunk_rows=7, **overrides))


def dense(matrix) -> torch.Tensor:
    return torch.tensor(matrix.toarray(), dtype=torch.float32)


def reference_learned_graph(model: LATTICE, inputs: ModelInputs) -> torch.Tensor:
    """The learned graph as LATTICE's code builds it: dense cosine similarity of the projections, dense
    top-k kept with their similarity values (the mask itself carries no gradient), modality mix,
    D^-1/2 S D^-1/2."""
    weights = model.modal_weight.softmax(0)
    mixed = 0
    for name, weight in zip(("visual", "text"), weights):
        projected = F.normalize(model.projections[name](model.features(name)), dim=1)
        similarity = projected @ projected.T
        keep = torch.zeros_like(similarity).scatter(1, similarity.topk(K, dim=1).indices, 1.0)
        mixed = mixed + weight * similarity * keep
    inv_sqrt = mixed.sum(1).pow(-0.5)
    return inv_sqrt[:, None] * mixed * inv_sqrt[None, :]


def reference_embeddings(model: LATTICE, inputs: ModelInputs, ui: torch.Tensor | None = None):
    weights = model.modal_weight.softmax(0)
    original = weights[0] * dense(inputs.graphs["ii_lattice_visual"]) + weights[1] * dense(inputs.graphs["ii_lattice_text"])
    item_graph = 0.1 * reference_learned_graph(model, inputs) + 0.9 * original
    h = item_graph @ model.item_embedding
    ui = dense(inputs.graphs["ui"]) if ui is None else ui
    x = torch.cat([model.user_embedding, model.item_embedding])
    layers = [x, ui @ x, ui @ ui @ x]
    final = torch.stack(layers).mean(0)
    n = inputs.n_users
    return final[:n], final[n:] + F.normalize(h, dim=1)


def reference_loss(model: LATTICE, inputs: ModelInputs, users, pos, neg) -> torch.Tensor:
    u_all, i_all = reference_embeddings(model, inputs)
    u, p, n = u_all[users], i_all[pos], i_all[neg]
    bpr = -F.logsigmoid((u * p).sum(1) - (u * n).sum(1)).mean()
    reg = 0.5 * (u.pow(2).sum() + p.pow(2).sum() + n.pow(2).sum()) / len(users)
    return bpr + model.config.reg_weight * reg


def batch(inputs: ModelInputs, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    pairs = torch.from_numpy(inputs.train_pairs)
    return pairs[:, 0], pairs[:, 1], torch.randint(0, inputs.n_items, (len(pairs),), generator=generator)


def grads(model: LATTICE) -> dict[str, torch.Tensor]:
    out = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


def test_registry_resolves_lattice():
    assert model_class("lattice") is LATTICE


def test_learned_neighbours_are_the_dense_top_k_of_the_projections():
    inputs = tiny_inputs()
    model = make(inputs)
    graph = model.item_graph()
    for index, name in enumerate(("visual", "text")):
        projected = F.normalize(model.projections[name](model.features(name)), dim=1)
        brute = (projected @ projected.T).topk(K, dim=1).indices
        found = graph.columns[:, index * K : (index + 1) * K]
        assert [set(row) for row in found.tolist()] == [set(row) for row in brute.tolist()]
        assert (found == torch.arange(inputs.n_items)[:, None]).any(1).all()  # self included, as the code


def test_learned_graph_matches_the_dense_reference_values():
    inputs = tiny_inputs()
    model = make(inputs)
    graph = model.item_graph()
    built = torch.zeros(inputs.n_items, inputs.n_items).index_put_(
        (torch.arange(inputs.n_items)[:, None].expand_as(graph.columns), graph.columns), graph.weights.detach(),
        accumulate=True)
    with torch.no_grad():
        expected = 0.1 * reference_learned_graph(model, inputs)
    assert torch.allclose(built, expected, atol=1e-6)
    assert set(graph.original) == {"visual", "text"}
    assert sum(graph.original.values()).item() == pytest.approx(0.9)


def test_embeddings_match_the_dense_reference():
    inputs = tiny_inputs()
    model = make(inputs)
    with torch.no_grad():
        users, items = model.embeddings()
        expected_users, expected_items = reference_embeddings(model, inputs)
    assert torch.allclose(users, expected_users, atol=1e-5)
    assert torch.allclose(items, expected_items, atol=1e-5)


@pytest.mark.parametrize("tune_features", [False, True])
def test_loss_and_every_gradient_match_the_dense_reference(tune_features):
    """The learned graph's edge weights are functions of the projections: gradients reach the projections,
    modal_weight (and the tuned features) through the similarities of the kept edges only."""
    inputs = tiny_inputs()
    model = make(inputs, reg_weight=0.01, tune_features=tune_features)
    if tune_features:  # a non-zero shift, so the test sees it enter the similarity
        with torch.no_grad():
            for shift in model.feature_shift.values():
                shift.normal_(std=0.1)
    users, pos, neg = batch(inputs)
    out = model.loss(users, pos, neg)
    out["loss"].backward()
    got = grads(model)
    expected_loss = reference_loss(model, inputs, users, pos, neg)
    expected_loss.backward()
    expected = grads(model)
    assert out["loss"].item() == pytest.approx(expected_loss.item(), rel=1e-5)
    assert set(got) == set(expected) == {name for name, _ in model.named_parameters()}
    for name in expected:
        assert torch.count_nonzero(got[name]) > 0, name
        assert torch.allclose(got[name], expected[name], rtol=1e-4, atol=1e-6), name


def test_graph_is_built_once_per_epoch_and_reused_detached():
    """As the code: the epoch's first batch builds the learned graph with gradients; the others reuse it
    detached, so the projections and modal_weight learn once per epoch; `graph_update: batch` rebuilds."""
    inputs = tiny_inputs()
    graph_parameters = {"modal_weight", "projections.visual.weight", "projections.text.bias"}
    model = make(inputs)
    rng = np.random.default_rng(0)
    model.pre_epoch(0, rng)
    for step in range(3):
        model.loss(*batch(inputs, step))["loss"].backward()
        names = set(grads(model))
        assert (graph_parameters <= names) == (step == 0), step
        assert {"user_embedding", "item_embedding"} <= names
    model.pre_epoch(1, rng)
    model.loss(*batch(inputs))["loss"].backward()
    assert graph_parameters <= set(grads(model))
    per_batch = make(inputs, graph_update="batch")
    for step in range(2):
        per_batch.loss(*batch(inputs, step))["loss"].backward()
        assert graph_parameters <= set(grads(per_batch))


def test_the_epochs_other_batches_see_the_same_graph_as_one_sparse_matrix():
    """The first batch's graph, detached and merged into one CSR (A, A^T), gives the later batches the
    same loss and the same gradients for the embeddings as the graph it was built from."""
    inputs = tiny_inputs()
    model = make(inputs)
    users, pos, neg = batch(inputs)
    first = model.loss(users, pos, neg)["loss"]
    first.backward()
    built = grads(model)
    adjacency, transposed = model._epoch_graph
    assert adjacency.layout == torch.sparse_csr
    with torch.no_grad():
        expected = 0.1 * reference_learned_graph(model, inputs) + 0.9 * sum(
            w * dense(inputs.graphs[f"ii_lattice_{m}"]) for m, w in zip(("visual", "text"), model.modal_weight.softmax(0)))
    assert torch.allclose(adjacency.to_dense(), expected, atol=1e-6)
    assert torch.allclose(transposed.to_dense(), expected.T, atol=1e-6)
    second = model.loss(users, pos, neg)["loss"]
    second.backward()
    reused = grads(model)
    assert second.item() == pytest.approx(first.item(), rel=1e-6)
    for name in ("user_embedding", "item_embedding"):
        assert torch.allclose(reused[name], built[name], atol=1e-7), name


def test_evaluation_rebuilds_the_graph_from_the_current_weights():
    inputs = tiny_inputs()
    model = make(inputs)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for step in range(2):
        optimizer.zero_grad()
        model.loss(*batch(inputs, step))["loss"].backward()
        optimizer.step()
    with torch.no_grad():
        users, items = model.embeddings()
        expected_users, expected_items = reference_embeddings(model, inputs)
    assert torch.allclose(items, expected_items, atol=1e-5) and torch.allclose(users, expected_users, atol=1e-5)


def test_code_user_item_graph_is_random_walk_with_self_loops():
    inputs = tiny_inputs()
    model = make(inputs, ui_norm="row_self_loop")
    binary = (dense(inputs.graphs["ui"]) != 0).float() + torch.eye(inputs.n_users + inputs.n_items)
    walk = binary / binary.sum(1, keepdim=True)
    assert torch.allclose(dense(random_walk_with_self_loops(inputs.graphs["ui"])), walk, atol=1e-6)
    with torch.no_grad():
        users, items = model.embeddings()
        expected_users, expected_items = reference_embeddings(model, inputs, ui=walk)
    assert torch.allclose(users, expected_users, atol=1e-5) and torch.allclose(items, expected_items, atol=1e-5)
    model.loss(*batch(inputs))["loss"].backward()  # the transposed graph serves the backward
    assert all(p.grad is not None for p in model.parameters())


def reads_features_through_buffers(model, modality: str) -> bool:
    """Whether the item embeddings change when `modality`'s buffer becomes its mean row (the engine's
    modality-contribution check)."""
    with torch.no_grad():
        _, items = model.embeddings()
        with mean_feature(model, modality):
            _, without = model.embeddings()
    return not torch.allclose(items, without)


def engine_data():
    """The engine tests' small random split with random visual and text features."""
    data = random_data()
    rng = np.random.default_rng(0)
    data.inputs.features.update({"visual": rng.normal(size=(40, 24)).astype(np.float32),
                                 "text": rng.normal(size=(40, 10)).astype(np.float32)})
    return data


@pytest.mark.parametrize("modality", ["visual", "text"])
def test_features_are_read_through_the_modality_buffers(modality):
    assert reads_features_through_buffers(make(tiny_inputs()), modality)


def test_a_catalogue_smaller_than_k_keeps_every_item():
    inputs = tiny_inputs(n_users=6, n_items=3)
    model = make(inputs)
    assert model.item_graph().columns.shape == (3, 6)
    assert torch.isfinite(model.loss(*batch(inputs))["loss"])


def test_knn_columns_is_chunk_independent_and_matches_brute_force():
    x = F.normalize(torch.randn(50, 7, generator=torch.Generator().manual_seed(1)), dim=1)
    brute = [set(row) for row in (x @ x.T).topk(5, dim=1).indices.tolist()]
    for chunk in (1, 8, 50, 1000):
        assert [set(row) for row in knn_columns(x, 5, chunk).tolist()] == brute
    assert knn_columns(x, 80, 8).shape == (50, 50)


def test_neighbour_sum_and_half_squared_l2_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    columns = torch.tensor([[1, 2], [0, 0]])
    weights = torch.tensor([[0.5, -1.0], [2.0, 1.0]])
    assert neighbour_sum(x, columns, weights).tolist() == [[-3.0, -2.0], [3.0, 0.0]]
    assert half_squared_l2(torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]])).item() == 6.75  # (25/2 + 2/2) / 2


def test_short_fit_through_the_engine():
    data = engine_data()
    add_graphs(data, ["ii_lattice_visual", "ii_lattice_text"])
    config = dataclasses.replace(Config(), embedding_dim=8, feat_embed_dim=8)
    model = build_model(LATTICE, data, config, seed=0)
    result = fit(model, data, TrainConfig(epochs=2, device="cpu", checkpoint=False), seed=0, progress=False)
    assert result.epochs == 2 and result.point.lr_decay == 0.96
    assert all(np.isfinite(record["loss"]) and np.isfinite(record["bpr"]) for record in result.history)
    assert 0 <= result.test["recall@20"] <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_forward_runs_on_cuda():
    inputs = tiny_inputs()
    model = make(inputs).cuda()
    users, pos, neg = (t.cuda() for t in batch(inputs))
    model.loss(users, pos, neg)["loss"].backward()
    with torch.no_grad():
        users_emb, items_emb = model.embeddings()
    assert users_emb.is_cuda and items_emb.is_cuda
