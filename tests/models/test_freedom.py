"""FREEDOM against a dense re-implementation written here (frozen item-item layer on the ID embedding,
LightGCN mean on the pruned graph for training and the full graph for evaluation, BPR plus the
modality-projection BPR terms), and its degree-sensitive pruning against exact sampling
probabilities computed by brute force."""
import itertools

import numpy as np
import pytest
import scipy.stats
import torch

from viral.config import ConfigError
from viral.models import model_class
from viral.models.freedom import FREEDOM, Config
from viral.models.layers import degree_sensitive_pruning, weighted_sample_without_replacement
from viral.params import parse_params
from viral.train.config import TrainConfig
from viral.train.data import TrainData
from viral.train.loop import build_model, fit

from .multimodal_inputs import (baby_with_random_features, cuda_round_trip, dense_normalised_adjacency, multimodal_data,
                               needs_baby, needs_cuda, one_step, random_batch)

SMALL = Config(embedding_dim=4, reg_weight=0.3)


def small_data() -> TrainData:
    return multimodal_data(30, 25, 6, ("ii_dragon",))


def reference(model: FREEDOM, data: TrainData, adjacency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n_users = data.inputs.n_users
    ego = torch.cat([model.user_embedding, model.item_embedding]).double()
    mean = (ego + adjacency @ ego + adjacency @ adjacency @ ego) / 3
    ii = torch.from_numpy(data.inputs.graphs["ii_dragon"].toarray()).double()
    return mean[:n_users], mean[n_users:] + ii @ model.item_embedding.double()


def kept_pairs(model: FREEDOM) -> np.ndarray:
    """The (user, item) edges of the model's current training graph."""
    block = model.pruned.to_dense()[: model.n_users, model.n_users :]
    return torch.nonzero(block).numpy()


def _model(data: TrainData, config: Config = SMALL, seed: int = 0) -> FREEDOM:
    torch.manual_seed(seed)
    return FREEDOM(data.inputs, config)


def bpr(u: torch.Tensor, p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    return -torch.log(torch.sigmoid((u * p).sum(1) - (u * n).sum(1))).mean()


def test_registry_resolves_freedom():
    assert model_class("freedom") is FREEDOM


def test_evaluation_embeddings_use_the_full_graph():
    data = small_data()
    model = _model(data)
    full = dense_normalised_adjacency(data.inputs.train_pairs, data.inputs.n_users, data.inputs.n_items)
    with torch.no_grad():
        expected = reference(model, data, full)
        for epoch in range(2):  # pruning changes the training graph only
            model.pre_epoch(epoch, np.random.default_rng(epoch))
            for got, want in zip(model.embeddings(), expected):
                torch.testing.assert_close(got.double(), want, atol=1e-6, rtol=1e-6)


def test_loss_matches_the_dense_reference_on_the_epochs_pruned_graph():
    data = small_data()
    inputs = data.inputs
    model = _model(data)
    model.pre_epoch(0, np.random.default_rng(4))
    kept = kept_pairs(model)
    assert len(kept) == int(len(inputs.train_pairs) * (1.0 - 0.8)) == 23  # MMRec's count: 120 x 0.19999...
    train = set(map(tuple, inputs.train_pairs.tolist()))
    assert set(map(tuple, kept.tolist())) <= train
    pruned = dense_normalised_adjacency(kept, inputs.n_users, inputs.n_items)
    torch.testing.assert_close(model.pruned.to_dense().double(), pruned, atol=1e-6, rtol=1e-6)
    u, p, n = random_batch(data)
    with torch.no_grad():
        users, items = reference(model, data, pruned)
        out = model.loss(u, p, n)
        modal = {}
        for name in ("text", "visual"):
            projection = model.projections[name]
            projected = torch.from_numpy(inputs.features[name]).double() @ projection.weight.double().T
            modal[name] = bpr(users[u], projected[p], projected[n])
        expected_bpr = bpr(users[u], items[p], items[n])
    assert out["bpr"].item() == pytest.approx(expected_bpr.item(), rel=1e-5)
    for name in ("text", "visual"):
        assert out[f"{name}_bpr"].item() == pytest.approx(modal[name].item(), rel=1e-5)
    total = expected_bpr + 0.3 * (modal["text"] + modal["visual"])
    assert out["loss"].item() == pytest.approx(total.item(), rel=1e-5)


@pytest.mark.parametrize("finetune", [False, True])
def test_gradients_reach_every_parameter(finetune):
    data = small_data()
    model = _model(data, Config(embedding_dim=4, reg_weight=0.3, tune_features=finetune))
    u, p, n = random_batch(data)
    model.loss(u[:20], p[:20], n[:20])["loss"].backward()
    expected = {"user_embedding", "item_embedding", "projections.text.weight", "projections.visual.weight"}
    if finetune:
        expected |= {"feature_shift.text", "feature_shift.visual"}
    assert {name for name, _ in model.named_parameters()} == expected
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.count_nonzero(parameter.grad) > 0, name
    if finetune:  # only the batch's items' feature rows learn
        touched = torch.zeros(data.inputs.n_items, dtype=torch.bool)
        touched[torch.cat([p[:20], n[:20]])] = True
        assert torch.equal(model.feature_shift["text"].grad.abs().sum(1) > 0, touched)


def test_fine_tuned_features_start_at_the_given_features():
    data = small_data()
    frozen = _model(data, seed=1)
    tuned = _model(data, Config(embedding_dim=4, reg_weight=0.3, tune_features=True), seed=1)
    with torch.no_grad():
        items = torch.arange(data.inputs.n_items)
        for name in ("text", "visual"):
            assert torch.equal(frozen.projected(name, items), tuned.projected(name, items))


def test_no_dropout_trains_on_the_full_graph():
    model = _model(small_data(), Config(embedding_dim=4, dropout=0.0))
    model.pre_epoch(0, np.random.default_rng(0))
    assert torch.equal(model.pruned.to_dense(), model.ui.to_dense())


@pytest.mark.parametrize("n_edges, dropout, kept", [(118551, 0.8, 23710), (118551, 0.9, 11855), (10, 0.8, 1),
                                                    (7, 0.5, 3), (5, 0.9, 0)])
def test_pruning_keeps_exactly_the_requested_edge_count(n_edges, dropout, kept):
    rng = np.random.default_rng(0)
    n_users, n_items = 50000, 9000
    pairs = np.unique(np.stack([rng.integers(0, n_users, 2 * n_edges), rng.integers(0, n_items, 2 * n_edges)], 1),
                      axis=0)[:n_edges]
    assert int(n_edges * (1.0 - dropout)) == kept  # MMRec's count, int(n * (1 - dropout))
    graph = degree_sensitive_pruning(pairs, n_users, n_items, kept, rng)
    assert graph.nnz == 2 * kept and (graph != graph.T).nnz == 0


def successive_sampling_probabilities(weights: np.ndarray, k: int) -> dict[frozenset, float]:
    """Exact probability of each k-subset when k items are drawn one after another without replacement,
    each with probability weight / (sum of the weights not drawn yet): every ordered sequence, summed."""
    subsets: dict[frozenset, float] = {}
    for sequence in itertools.permutations(range(len(weights)), k):
        probability, left = 1.0, weights.sum()
        for i in sequence:
            probability *= weights[i] / left
            left -= weights[i]
        key = frozenset(sequence)
        subsets[key] = subsets.get(key, 0.0) + probability
    return subsets


def tiny_graph() -> tuple[np.ndarray, np.ndarray]:
    """7 edges with degrees spread out; weights 1/sqrt(d_u d_i) computed by hand from the degrees."""
    pairs = np.array([[0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [2, 0], [3, 4]])
    d_u = {0: 4, 1: 1, 2: 1, 3: 1}
    d_i = {0: 3, 1: 1, 2: 1, 3: 1, 4: 1}
    weights = np.array([1 / np.sqrt(d_u[u] * d_i[i]) for u, i in pairs])
    return pairs, weights


def _chi_square(observed: dict[frozenset, int], probabilities: dict[frozenset, float], draws: int) -> float:
    keys = sorted(probabilities, key=sorted)
    counts = np.array([observed.get(key, 0) for key in keys])
    expected = np.array([probabilities[key] for key in keys]) * draws
    assert counts.sum() == draws, "a draw returned a set outside the candidates"
    return scipy.stats.chisquare(counts, expected).pvalue


def test_pruned_edge_sets_follow_the_degree_sensitive_distribution():
    """Which 3 of 7 edges survive, over 6000 prunings of a tiny graph: a chi-square test of the 35 edge
    sets against their exact probabilities under 1/sqrt(d_u d_i) sampling without replacement; the same
    counts reject uniform sampling and sampling with weights 1/(d_u d_i)."""
    pairs, weights = tiny_graph()
    rng = np.random.default_rng(2024)
    draws, keep = 6000, 3
    edge_id = {(u, 4 + i): e for e, (u, i) in enumerate(pairs.tolist())}
    observed: dict[frozenset, int] = {}
    for _ in range(draws):
        graph = degree_sensitive_pruning(pairs, 4, 5, keep, rng).tocoo()
        kept = frozenset(edge_id[edge] for edge in zip(graph.row.tolist(), graph.col.tolist()) if edge in edge_id)
        observed[kept] = observed.get(kept, 0) + 1
    assert _chi_square(observed, successive_sampling_probabilities(weights, keep), draws) > 1e-3
    assert _chi_square(observed, successive_sampling_probabilities(np.ones(7), keep), draws) < 1e-6
    assert _chi_square(observed, successive_sampling_probabilities(weights**2, keep), draws) < 1e-6


def test_weighted_sampling_inclusion_frequencies_match_brute_force():
    """Each item's inclusion frequency over 20000 draws of 3 of 6 against its exact inclusion probability
    (brute force over all orders), within 4.5 binomial standard errors."""
    weights = np.array([5.0, 1.0, 0.5, 2.0, 0.1, 1.5])
    exact = np.zeros(6)
    for subset, probability in successive_sampling_probabilities(weights, 3).items():
        exact[list(subset)] += probability
    rng = np.random.default_rng(7)
    draws = 20000
    counts = np.zeros(6)
    for _ in range(draws):
        chosen = weighted_sample_without_replacement(weights, 3, rng)
        assert len(set(chosen.tolist())) == 3
        counts[chosen] += 1
    error = np.sqrt(exact * (1 - exact) / draws)
    assert np.all(np.abs(counts / draws - exact) < 4.5 * error), (counts / draws, exact)


def test_weighted_sampling_edge_cases():
    rng = np.random.default_rng(0)
    assert weighted_sample_without_replacement(np.ones(4), 0, rng).tolist() == []
    assert weighted_sample_without_replacement(np.ones(4), 4, rng).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="cannot draw 5 distinct items from 4"):
        weighted_sample_without_replacement(np.ones(4), 5, rng)


def test_pruning_repeats_with_the_seed_and_changes_every_epoch():
    data = small_data()
    model = _model(data)
    draws = np.random.default_rng(3)
    model.pre_epoch(0, draws)
    first = kept_pairs(model)
    model.pre_epoch(1, draws)
    assert not np.array_equal(first, kept_pairs(model))
    model.pre_epoch(0, np.random.default_rng(3))
    assert np.array_equal(first, kept_pairs(model))


def test_trains_in_the_engine():
    data = small_data()
    model = build_model(FREEDOM, data, SMALL, seed=3)
    result = fit(model, data, TrainConfig(epochs=2, device="cpu", checkpoint=False), seed=3, progress=False)
    assert result.epochs == 2 and result.point.lr == 1e-3 and result.point.batch_size == 2048
    for record in result.history:
        assert {"loss", "bpr", "text_bpr", "visual_bpr"} <= set(record)
        assert all(np.isfinite(record[key]) for key in ("loss", "bpr", "text_bpr", "visual_bpr"))


def test_bad_config_fails_with_one_line():
    with pytest.raises(ConfigError, match="models.freedom.dropout"):
        parse_params({"models": {"freedom": {"dropout": 1.0}}})
    with pytest.raises(ConfigError, match="models.freedom.tune_features"):
        parse_params({"models": {"freedom": {"tune_features": "yes"}}})


@needs_cuda
def test_trains_and_prunes_on_cuda():
    data = small_data()
    model = _model(data)
    cuda_round_trip(model, data)
    assert model.pruned.is_cuda


@pytest.mark.slow
@needs_baby
def test_one_step_on_the_real_baby_graphs():
    data = baby_with_random_features(FREEDOM.requires)
    model = _model(data, Config())
    model.pre_epoch(0, np.random.default_rng(0))
    assert model.pruned.values().numel() == 2 * 23710  # int(118,551 x 0.2) edges, both directions
    out = one_step(model, data)
    assert all(torch.isfinite(value) for value in out.values())
