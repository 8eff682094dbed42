"""DRAGON against a dense re-implementation written here: per-modality GCN, attentive concatenation,
item-item layer, the user graph DRAGON resamples every epoch (brute-force padding), log2-BPR and its
reg; gradients, the per-epoch resampling, state round trips and a short fit."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from viral.config import ConfigError
from viral.models import model_class
from viral.models.dragon import DRAGON, Config
from viral.params import parse_params
from viral.train.config import TrainConfig
from viral.train.data import TrainData, add_graphs
from viral.train.evaluate import evaluate
from viral.train.loop import build_model, fit

from .multimodal_inputs import (baby_with_random_features, cuda_round_trip, dense_normalised_adjacency, multimodal_data,
                               needs_baby, needs_cuda, one_step, random_batch)

SMALL = Config(embedding_dim=4, feat_hidden_dim=6, user_graph_k=5, reg_weight=0.1)


def small_data() -> TrainData:
    """40 users, 80 items, 4 train items each: some users have no co-user, several fewer than k = 5."""
    return multimodal_data(40, 80, 6, ("ii_dragon", "uu_counts"))


def dense_user_graph(pairs: np.ndarray, n_users: int, n_items: int, k: int, seed: int) -> torch.Tensor:
    """DRAGON's topk_sample written as a loop: each user's co-users by count (ties: lower id), the first
    k; a shorter list grows by appending a copy of slot floor(u * len) (u from row u of one (n_users, k)
    uniform draw, slot j using column j); weights = softmax of the slot counts, duplicates adding up."""
    r = np.zeros((n_users, n_items))
    r[pairs[:, 0], pairs[:, 1]] = 1
    counts = r @ r.T
    np.fill_diagonal(counts, 0)
    uniforms = np.random.default_rng(seed).random((n_users, k))
    graph = torch.zeros(n_users, n_users, dtype=torch.float64)
    for u in range(n_users):
        slots = sorted(np.flatnonzero(counts[u]), key=lambda v: (-counts[u, v], v))[:k]
        if not slots:
            continue
        while len(slots) < k:
            slots.append(slots[int(uniforms[u, len(slots)] * len(slots))])
        weights = torch.softmax(torch.tensor([counts[u, v] for v in slots], dtype=torch.float64), 0)
        for v, w in zip(slots, weights):
            graph[u, v] += w
    return graph


def reference(model: DRAGON, data: TrainData, user_graph: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = data.inputs
    n_users = inputs.n_users
    adjacency = dense_normalised_adjacency(inputs.train_pairs, n_users, inputs.n_items)
    outputs = {}
    for name in ("visual", "text"):
        gcn = model.gcns[name]
        hidden = F.leaky_relu(torch.from_numpy(inputs.features[name]).double() @ gcn.mlp.hidden.weight.double().T
                              + gcn.mlp.hidden.bias.double(), 0.01)
        items = hidden @ gcn.mlp.out.weight.double().T + gcn.mlp.out.bias.double()
        x = torch.cat([gcn.preference.double(), items])
        x = x / x.norm(dim=1, keepdim=True)
        outputs[name] = x + adjacency @ x + adjacency @ adjacency @ x
    w = model.user_weights.double()
    user = torch.cat([w[:, :1] * outputs["visual"][:n_users], w[:, 1:] * outputs["text"][:n_users]], 1)
    item = torch.cat([outputs["visual"][n_users:], outputs["text"][n_users:]], 1)
    ii = torch.from_numpy(inputs.graphs["ii_dragon"].toarray()).double()
    return user + user_graph @ user, item + ii @ item


def _model(data: TrainData, config: Config = SMALL, seed: int = 0) -> DRAGON:
    torch.manual_seed(seed)
    return DRAGON(data.inputs, config)


def test_registry_resolves_dragon():
    assert model_class("dragon") is DRAGON


@pytest.mark.parametrize("seed", [3, 4])
def test_forward_and_loss_match_the_dense_reference_with_the_epochs_user_graph(seed):
    data = small_data()
    inputs = data.inputs
    model = _model(data)
    model.pre_epoch(0, np.random.default_rng(seed))
    user_graph = dense_user_graph(inputs.train_pairs, inputs.n_users, inputs.n_items, SMALL.user_graph_k, seed)
    sizes = (user_graph > 0).sum(1)
    assert ((sizes > 1) & (sizes < SMALL.user_graph_k)).any(), "the data must include padded users"
    assert (sizes == 0).any() and (sizes == SMALL.user_graph_k).any()
    with torch.no_grad():
        expected_users, expected_items = reference(model, data, user_graph)
        users, items = model.embeddings()
        assert users.shape == (40, 8) and items.shape == (80, 8)
        torch.testing.assert_close(users.double(), expected_users, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(items.double(), expected_items, atol=1e-5, rtol=1e-5)
        u, p, n = random_batch(data)
        out = model.loss(u, p, n)
        diff = (expected_users[u] * expected_items[p]).sum(1) - (expected_users[u] * expected_items[n]).sum(1)
        bpr = -torch.log2(torch.sigmoid(diff)).mean()
        reg = 0.1 * ((model.gcns["visual"].preference[u].double() ** 2).mean()
                     + (model.gcns["text"].preference[u].double() ** 2).mean()
                     + (model.user_weights.double() ** 2).mean())
    assert out["bpr"].item() == pytest.approx(bpr.item(), rel=1e-5)
    assert out["reg"].item() == pytest.approx(reg.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((bpr + reg).item(), rel=1e-5)


def test_user_graph_of_a_user_without_co_users_is_empty():
    data = small_data()
    pairs = data.inputs.train_pairs
    lonely_item = data.inputs.n_items  # a user alone on a fresh item shares nothing with anyone
    data.inputs.train_pairs = np.vstack([pairs[pairs[:, 0] != 0], [[0, lonely_item]]])
    data.inputs.n_items += 1
    data.inputs.features = {k: np.vstack([v, v[:1]]) for k, v in data.inputs.features.items()}
    data.inputs.graphs.clear()
    add_graphs(data, ["ui", "ii_dragon", "uu_counts"])
    model = _model(data)
    model.pre_epoch(0, np.random.default_rng(0))
    assert model.user_graph.weights[0].abs().sum() == 0
    x = torch.randn(40, 3)
    assert torch.equal(model.user_graph(x)[0], torch.zeros(3))


def test_gradients_reach_every_parameter():
    data = small_data()
    model = _model(data)
    model.loss(*random_batch(data))["loss"].backward()
    names = {name for name, _ in model.named_parameters()}
    assert names == {"user_weights", *(f"gcns.{m}.{p}" for m in ("visual", "text")
                                       for p in ("preference", "mlp.hidden.weight", "mlp.hidden.bias",
                                                 "mlp.out.weight", "mlp.out.bias"))}
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.count_nonzero(parameter.grad) > 0, name


def test_modality_weights_start_softmaxed_and_are_reported_per_modality():
    model = _model(small_data())
    weights = model.user_modality_weights()
    assert list(weights) == ["visual", "text"]
    torch.testing.assert_close(weights["visual"] + weights["text"], torch.ones(40))
    assert (weights["visual"] > 0).all() and not torch.equal(weights["visual"], weights["text"])


def test_user_graph_is_redrawn_every_epoch_from_the_runs_rng():
    data = small_data()
    model = _model(data)
    draws = np.random.default_rng(5)
    model.pre_epoch(0, draws)
    first = model.user_graph.adjacency.to_dense().clone()
    model.pre_epoch(1, draws)
    assert not torch.equal(first, model.user_graph.adjacency.to_dense()), "short lists are padded afresh"
    model.pre_epoch(0, np.random.default_rng(5))
    assert torch.equal(first, model.user_graph.adjacency.to_dense())
    torch.testing.assert_close(model.user_graph.adjacency_t.to_dense(), first.T)


def test_state_dict_carries_the_user_graph_it_was_evaluated_with():
    data = small_data()
    model = _model(data)
    model.pre_epoch(0, np.random.default_rng(1))
    state = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        expected = model.embeddings()
    other = _model(data, seed=7)
    other.pre_epoch(0, np.random.default_rng(2))
    other.load_state_dict(state)
    with torch.no_grad():
        for got, want in zip(other.embeddings(), expected):
            assert torch.equal(got, want)
    assert not {"ui", "item_graph.adjacency", "item_graph.adjacency_t", "text", "visual", "user_graph.adjacency"} & set(state)


def test_trains_in_the_engine():
    data = small_data()
    model = build_model(DRAGON, data, SMALL, seed=3)
    result = fit(model, data, TrainConfig(epochs=2, device="cpu", checkpoint=False), seed=3, progress=False)
    assert result.epochs == 2 and result.point.lr == 1e-4 and result.point.batch_size == 2048
    for record in result.history:
        assert {"loss", "bpr", "reg"} <= set(record)
        assert all(np.isfinite(record[key]) for key in ("loss", "bpr", "reg"))


def test_runs_repeat_exactly_with_the_seed():
    data = small_data()
    runs = []
    for _ in range(2):
        model = build_model(DRAGON, data, SMALL, seed=11)
        fit(model, data, TrainConfig(epochs=2, device="cpu", checkpoint=False, lr=0.01), seed=11, progress=False)
        runs.append(model.state_dict())
    for key in runs[0]:
        assert torch.equal(runs[0][key], runs[1][key]), key


def test_after_fit_the_model_scores_as_at_its_best_epoch():
    """The best epoch's weights come back with the user graph of that epoch, not the last one drawn."""
    data = small_data()
    model = build_model(DRAGON, data, SMALL, seed=5)
    result = fit(model, data, TrainConfig(epochs=6, device="cpu", checkpoint=False, lr=0.05), seed=5,
                 progress=False)
    assert result.best_epoch < result.epochs, "the check needs a best epoch before the last"
    assert evaluate(model, data) == {"valid": result.valid, "test": result.test}


def test_an_interrupted_run_resumes_exactly(tmp_path):
    data = small_data()
    config = TrainConfig(epochs=4, device="cpu", checkpoint=True, lr=0.01)
    expected = fit(build_model(DRAGON, data, SMALL, seed=2), data, config, seed=2, progress=False)
    interrupted = build_model(DRAGON, data, SMALL, seed=2)
    original, calls = interrupted.loss, {"n": 0}

    def crash_in_epoch_three(*args):
        calls["n"] += 1
        if calls["n"] == 3:  # one batch per epoch
            raise KeyboardInterrupt
        return original(*args)

    interrupted.loss = crash_in_epoch_three
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, data, config, seed=2, checkpoint=tmp_path / "state.pt", progress=False)
    resumed = build_model(DRAGON, data, SMALL, seed=2)
    result = fit(resumed, data, config, seed=2, checkpoint=tmp_path / "state.pt", progress=False)
    strip = [{k: v for k, v in record.items() if "seconds" not in k} for record in result.history]
    assert strip == [{k: v for k, v in record.items() if "seconds" not in k} for record in expected.history]


def test_bad_config_fails_with_one_line():
    with pytest.raises(ConfigError, match="models.dragon.user_graph_k"):
        parse_params({"models": {"dragon": {"user_graph_k": 0}}})
    with pytest.raises(ConfigError, match="models.dragon.reg_weight"):
        parse_params({"models": {"dragon": {"reg_weight": -1.0}}})


def test_needs_both_modalities_and_the_co_interaction_lists():
    data = small_data()
    del data.inputs.graphs["uu_counts"]
    with pytest.raises(ValueError, match=r"needs inputs \['uu_counts'\]"):
        _model(data)


@needs_cuda
def test_trains_and_resamples_on_cuda():
    data = small_data()
    model = _model(data)
    cuda_round_trip(model, data)
    assert model.user_graph.adjacency.is_cuda


@pytest.mark.slow
@needs_baby
def test_one_step_on_the_real_baby_graphs():
    data = baby_with_random_features(DRAGON.requires)
    model = _model(data, Config())
    model.pre_epoch(0, np.random.default_rng(0))
    out = one_step(model, data)
    assert all(torch.isfinite(value) for value in out.values())
    users, items = model.embeddings()
    assert users.shape == (19445, 128) and items.shape == (7050, 128)
