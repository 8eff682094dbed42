"""COHESION against a dense re-implementation written here: early fusion with the ID table, the
cosine-rescaled composite GCN per branch, [id || v || t] with the user-user (DRAGON's resampled graph,
brute-force padding) and item-item residuals, the adaptive per-block BPR and its reg, on the full or the
degree-sensitively pruned graph; hand-computed values of the fusion and the adaptive weights; the
detached ID branch; gradients and short fits."""
import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from viral.config import ConfigError
from viral.models import model_class
from viral.models.cohesion import COHESION, Config, adaptive_scores, early_fusion
from viral.params import parse_params
from viral.train.config import TrainConfig
from viral.train.data import TrainData
from viral.train.loop import build_model, fit

from .multimodal_inputs import (assert_runs_repeat, baby_with_random_features, cuda_round_trip,
                               dense_normalised_adjacency, multimodal_data, needs_baby, needs_cuda, one_step,
                               random_batch)
from .test_dragon import dense_user_graph

SMALL = Config(embedding_dim=4, feat_hidden_dim=6, user_graph_k=5, reg_weight=0.1)
PARAMETERS = ("preference", "mlp.hidden.weight", "mlp.hidden.bias", "mlp.out.weight", "mlp.out.bias")


def small_data() -> TrainData:
    """40 users, 80 items, 4 train items each: some users have no co-user, several fewer than k = 5."""
    return multimodal_data(40, 80, 6, ("ii_dragon", "uu_counts"))


def _model(data: TrainData, config: Config = SMALL, seed: int = 0) -> COHESION:
    torch.manual_seed(seed)
    return COHESION(data.inputs, config)


def dense_branch(model: COHESION, item_input: torch.Tensor, gcn, adjacency: torch.Tensor) -> torch.Tensor:
    ids = model.id_features.double()
    hidden = F.leaky_relu(item_input.double() @ gcn.mlp.hidden.weight.double().T + gcn.mlp.hidden.bias.double(), 0.01)
    projected = hidden @ gcn.mlp.out.weight.double().T + gcn.mlp.out.bias.double()
    fused = ((ids ** 2 + projected ** 2) / 2 + 1e-8).sqrt()
    x = torch.cat([gcn.preference.double(), fused])
    x = x / x.norm(dim=1, keepdim=True)
    total, h = x.clone(), x
    for _ in range(model.config.n_ui_layers):
        h = adjacency @ h
        norms = h.norm(dim=1) * x.norm(dim=1)
        cosine = torch.where(norms > 0, (h * x).sum(1) / norms.clamp_min(1e-30), torch.zeros_like(norms))
        h = cosine[:, None] * h
        total = total + h
    return total


def reference(model: COHESION, data: TrainData, adjacency: torch.Tensor,
              user_graph: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    inputs = data.inputs
    n_users = inputs.n_users
    inputs_of = {"id": model.id_features, **{m: torch.from_numpy(inputs.features[m]) for m in ("visual", "text")}}
    outputs = [dense_branch(model, inputs_of[name], model.gcns[name], adjacency) for name in ("id", "visual", "text")]
    users = torch.cat([out[:n_users] for out in outputs], 1)
    items = torch.cat([out[n_users:] for out in outputs], 1)
    ii = torch.from_numpy(inputs.graphs["ii_dragon"].toarray()).double()
    return users + user_graph @ users, items + ii @ items


def reference_loss(model: COHESION, z_u, z_i, users, pos, neg) -> tuple[torch.Tensor, torch.Tensor]:
    d = model.config.embedding_dim
    bpr = torch.zeros((), dtype=torch.float64)
    for u, p, n in zip(users.tolist(), pos.tolist(), neg.tolist()):
        pos_m = torch.stack([(z_u[u, m * d : (m + 1) * d] * z_i[p, m * d : (m + 1) * d]).sum() for m in range(3)])
        neg_m = torch.stack([(z_u[u, m * d : (m + 1) * d] * z_i[n, m * d : (m + 1) * d]).sum() for m in range(3)])
        gap = pos_m - neg_m
        weights = 1 - torch.exp(gap) / torch.exp(gap).sum()
        bpr = bpr - math.log2(1 / (1 + math.exp(-((weights * pos_m).sum() - (weights * neg_m).sum()).item())))
    reg = model.config.reg_weight * ((model.gcns["visual"].preference[users].double() ** 2).mean()
                                     + (model.gcns["text"].preference[users].double() ** 2).mean()
                                     + (model.user_weights.double() ** 2).mean())
    return bpr / len(users), reg


def kept_pairs(model: COHESION) -> np.ndarray:
    block = model.pruned.to_dense()[: model.n_users, model.n_users :]
    return torch.nonzero(block).numpy()


def test_registry_resolves_cohesion():
    assert model_class("cohesion") is COHESION


def test_early_fusion_and_adaptive_weights_by_hand():
    assert early_fusion(torch.tensor([3.0]), torch.tensor([-4.0])).item() == pytest.approx(math.sqrt(12.5))
    assert early_fusion(torch.tensor([0.0]), torch.tensor([0.0])).item() == pytest.approx(1e-4)
    # Two blocks of width 1: pos blocks (2, 1), neg blocks (0, 1): gaps (2, 0), softmax (e^2, 1)/(e^2 + 1).
    u, p, n = torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 1.0]]), torch.tensor([[0.0, 1.0]])
    pos, neg = adaptive_scores(u, p, n, 2)
    w = [1 - math.exp(2) / (math.exp(2) + 1), 1 - 1 / (math.exp(2) + 1)]
    assert pos.item() == pytest.approx(2 * w[0] + w[1]) and neg.item() == pytest.approx(w[1])


@pytest.mark.parametrize("seed", [3, 4])
def test_forward_and_loss_match_the_dense_reference_with_the_epochs_user_graph(seed):
    data = small_data()
    inputs = data.inputs
    model = _model(data)
    model.pre_epoch(0, np.random.default_rng(seed))
    user_graph = dense_user_graph(inputs.train_pairs, inputs.n_users, inputs.n_items, SMALL.user_graph_k, seed)
    adjacency = dense_normalised_adjacency(inputs.train_pairs, inputs.n_users, inputs.n_items)
    assert (adjacency[inputs.n_users :].sum(1) == 0).any(), "the data must include items without train users"
    users, pos, neg = (t[:40] for t in random_batch(data))
    with torch.no_grad():
        expected_users, expected_items = reference(model, data, adjacency, user_graph)
        z_u, z_i = model.embeddings()
        assert z_u.shape == (40, 12) and z_i.shape == (80, 12)
        torch.testing.assert_close(z_u.double(), expected_users, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(z_i.double(), expected_items, atol=1e-5, rtol=1e-5)
        out = model.loss(users, pos, neg)
    bpr, reg = reference_loss(model, expected_users, expected_items, users, pos, neg)
    assert out["bpr"].item() == pytest.approx(bpr.item(), rel=1e-5)
    assert out["reg"].item() == pytest.approx(reg.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((bpr + reg).item(), rel=1e-5)


def test_training_uses_the_pruned_graph_and_evaluation_the_full_one():
    data = small_data()
    inputs = data.inputs
    model = _model(data, dataclasses.replace(SMALL, dropout=0.5))
    model.pre_epoch(0, np.random.default_rng(2))
    kept = kept_pairs(model)
    assert len(kept) == int(len(inputs.train_pairs) * 0.5)
    assert set(map(tuple, kept.tolist())) <= set(map(tuple, inputs.train_pairs.tolist()))
    user_graph = dense_user_graph(inputs.train_pairs, inputs.n_users, inputs.n_items, SMALL.user_graph_k, 2)
    pruned = dense_normalised_adjacency(kept, inputs.n_users, inputs.n_items)
    full = dense_normalised_adjacency(inputs.train_pairs, inputs.n_users, inputs.n_items)
    users, pos, neg = random_batch(data)
    with torch.no_grad():
        out = model.loss(users, pos, neg)
        bpr, _ = reference_loss(model, *reference(model, data, pruned, user_graph), users, pos, neg)
        for got, want in zip(model.embeddings(), reference(model, data, full, user_graph)):
            torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    assert out["bpr"].item() == pytest.approx(bpr.item(), rel=1e-5)
    model.pre_epoch(1, np.random.default_rng(3))
    assert set(map(tuple, kept_pairs(model).tolist())) != set(map(tuple, kept.tolist())), "redrawn every epoch"


def test_gradients_reach_every_parameter_but_the_detached_id_branch():
    data = small_data()
    model = _model(data)
    model.loss(*random_batch(data))["loss"].backward()
    names = {name for name, _ in model.named_parameters()}
    assert names == {"id_features", "user_weights", *(f"gcns.{b}.{p}" for b in ("id", "visual", "text")
                                                      for p in PARAMETERS)}
    for name, parameter in model.named_parameters():
        if name.startswith("gcns.id."):  # detached before fusion: the code's ID MLP and preference never train
            assert parameter.grad is None, name
        else:
            assert parameter.grad is not None and torch.count_nonzero(parameter.grad) > 0, name


def test_without_the_detach_the_id_branch_learns_too():
    data = small_data()
    model = _model(data, dataclasses.replace(SMALL, detach_id=False))
    model.loss(*random_batch(data))["loss"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.count_nonzero(parameter.grad) > 0, name


def test_trains_in_the_engine_and_selects_on_recall_at_10():
    data = small_data()
    model = build_model(COHESION, data, SMALL, seed=3)
    result = fit(model, data, TrainConfig(epochs=2, device="cpu", checkpoint=False), seed=3, progress=False)
    assert result.epochs == 2 and result.point.lr == 1e-4 and result.point.valid_metric == "recall@10"
    for record in result.history:
        assert all(np.isfinite(record[key]) for key in ("loss", "bpr", "reg"))
    assert model.user_modality_weights() == {}


def test_runs_repeat_exactly_with_the_seed():
    assert_runs_repeat(COHESION, small_data(), dataclasses.replace(SMALL, dropout=0.3))


def test_bad_config_fails_with_one_line():
    with pytest.raises(ConfigError, match="models.cohesion.dropout"):
        parse_params({"models": {"cohesion": {"dropout": 1.0}}})
    with pytest.raises(ConfigError, match="models.cohesion.n_ui_layers"):
        parse_params({"models": {"cohesion": {"n_ui_layers": -1}}})


def test_needs_the_co_interaction_lists():
    data = small_data()
    del data.inputs.graphs["uu_counts"]
    with pytest.raises(ValueError, match=r"needs inputs \['uu_counts'\]"):
        _model(data)


@needs_cuda
def test_trains_on_cuda():
    data = small_data()
    model = _model(data, dataclasses.replace(SMALL, dropout=0.3))
    cuda_round_trip(model, data)
    assert model.pruned.is_cuda


@pytest.mark.slow
@needs_baby
def test_one_step_on_the_real_baby_graphs():
    data = baby_with_random_features(COHESION.requires)
    model = _model(data, Config())
    model.pre_epoch(0, np.random.default_rng(0))
    out = one_step(model, data)
    assert all(torch.isfinite(value) for value in out.values())
    users, items = model.embeddings()
    assert users.shape == (19445, 192) and items.shape == (7050, 192)
