"""MENTOR against a dense re-implementation written here: the v/t/id GCNs, DRAGON's attentive
concatenation, the item-item layer on every table, log2-BPR and reg, the alignment of the four tables'
statistics, the feature-masking term and the InfoNCE between the perturbed views (over all nodes, in
blocks or dense, or over the batch's nodes); the perturbation against explicit draws; gradients, the
code's no-grad masking switch, and short fits."""
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from viral.config import ConfigError
from viral.models import model_class
from viral.models.base import sparse_csr
from viral.models.mentor import MENTOR, Config, perturbed_layer_sum
from viral.params import parse_params
from viral.train.config import TrainConfig
from viral.train.data import TrainData
from viral.train.loop import build_model, fit

from .multimodal_inputs import (assert_runs_repeat, baby_with_random_features, cuda_round_trip,
                               dense_normalised_adjacency, multimodal_data, needs_baby, needs_cuda, one_step,
                               random_batch)

# Deterministic terms (no noise, no dropout) with weights large enough to matter in the comparison.
EXACT = Config(embedding_dim=4, feat_hidden_dim=6, reg_weight=0.1, align_weight=0.3, mask_weight_f=0.7,
               mask_dropout=0.0, mask_weight_g=0.5, noise_eps=0.0, nce_chunk_rows=7)
SMALL = Config(embedding_dim=4, feat_hidden_dim=6)
PARAMETERS = ("preference", "mlp.hidden.weight", "mlp.hidden.bias", "mlp.out.weight", "mlp.out.bias")


def small_data() -> TrainData:
    return multimodal_data(40, 80, 6, ("ii_dragon",))


def _model(data: TrainData, config: Config = SMALL, seed: int = 0) -> MENTOR:
    torch.manual_seed(seed)
    return MENTOR(data.inputs, config)


def dense_gcn(gcn, item_input: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
    """DRAGON's encoder, densely: normalise([preference; MLP(items)]), then x + A x + A^2 x."""
    hidden = F.leaky_relu(item_input.double() @ gcn.mlp.hidden.weight.double().T + gcn.mlp.hidden.bias.double(), 0.01)
    items = hidden @ gcn.mlp.out.weight.double().T + gcn.mlp.out.bias.double()
    x = torch.cat([gcn.preference.double(), items])
    x = x / x.norm(dim=1, keepdim=True)
    return x + adjacency @ x + adjacency @ adjacency @ x


def dense_table(first: torch.Tensor, second: torch.Tensor, n_users: int, ii: torch.Tensor,
                weights: torch.Tensor | None) -> torch.Tensor:
    users = [first[:n_users], second[:n_users]]
    if weights is not None:
        users = [weights[:, k : k + 1] * part for k, part in enumerate(users)]
    items = torch.cat([first[n_users:], second[n_users:]], 1)
    return torch.cat([torch.cat(users, 1), items + ii @ items])


def dense_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    a, b = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    similarities = torch.exp(a @ b.T / temperature)
    return -torch.log(similarities.diagonal() / similarities.sum(1)).mean()


def statistics_gap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    def var(t):
        return ((t - t.mean()) ** 2).sum() / (t.numel() - 1)
    return (var(a) - var(b)).abs() + (a.mean() - b.mean()).abs()


def reference(model: MENTOR, data: TrainData, users, pos, neg) -> dict[str, torch.Tensor]:
    """Every term of the loss for EXACT-like configs (no noise, no dropout), in float64."""
    c, inputs = model.config, data.inputs
    n_users = inputs.n_users
    adjacency = dense_normalised_adjacency(inputs.train_pairs, n_users, inputs.n_items)
    ii = torch.from_numpy(inputs.graphs["ii_dragon"].toarray()).double()
    features = {name: torch.from_numpy(inputs.features[name]) for name in ("visual", "text")}
    features["id"] = model.id_features
    x = {name: dense_gcn(model.gcns[name], features[name], adjacency) for name in ("visual", "text", "id")}
    w = model.user_weights.double()
    fused = dense_table(x["visual"], x["text"], n_users, ii, w)
    z_u, z_i = fused[:n_users], fused[n_users:]
    diff = (z_u[users] * z_i[pos]).sum(1) - (z_u[users] * z_i[neg]).sum(1)
    out = {"bpr": -torch.log2(torch.sigmoid(diff)).mean()}
    out["reg"] = c.reg_weight * ((model.gcns["visual"].preference[users].double() ** 2).mean()
                                 + (model.gcns["text"].preference[users].double() ** 2).mean() + (w ** 2).mean())
    tables = [fused] + [dense_table(x[name], x[name], n_users, ii, None) for name in ("id", "visual", "text")]
    out["align"] = c.align_weight * sum(statistics_gap(tables[i], tables[j])
                                        for i in range(4) for j in range(i + 1, 4))
    mlp_w, mlp_b = model.mask_mlp.weight.double(), model.mask_mlp.bias.double()

    def mask(z):
        projected = z @ mlp_w.T + mlp_b
        return 1 - ((z * projected).sum(1) / (z.norm(dim=1) * projected.norm(dim=1))).mean()
    out["mask_f"] = c.mask_weight_f * (mask(z_u) + mask(z_i))
    views = []
    for view in ("n1", "n2"):
        encoders = {name: model.gcns[name] if model.perturbed is None else model.perturbed[f"{name}_{view}"]
                    for name in ("visual", "text")}
        clean = {name: dense_gcn(encoders[name], features[name], adjacency) for name in ("visual", "text")}
        views.append(dense_table(clean["visual"], clean["text"], n_users, ii, w))
    if c.nce_nodes == "all":
        user_rows, item_rows = np.arange(n_users), n_users + np.arange(inputs.n_items)
    else:
        user_rows = np.unique(users.numpy())
        item_rows = n_users + np.unique(np.concatenate([pos.numpy(), neg.numpy()]))
    out["mask_g"] = c.mask_weight_g * sum(dense_nce(views[0][r], views[1][r], c.nce_temperature)
                                          for r in (user_rows, item_rows))
    out["loss"] = sum(out.values())
    return out


def test_registry_resolves_mentor():
    assert model_class("mentor") is MENTOR


def test_evaluation_embeddings_are_the_fused_tables():
    data = small_data()
    model = _model(data)
    model.eval()
    inputs = data.inputs
    adjacency = dense_normalised_adjacency(inputs.train_pairs, inputs.n_users, inputs.n_items)
    ii = torch.from_numpy(inputs.graphs["ii_dragon"].toarray()).double()
    with torch.no_grad():
        v, t = (dense_gcn(model.gcns[name], torch.from_numpy(inputs.features[name]), adjacency)
                for name in ("visual", "text"))
        expected = dense_table(v, t, inputs.n_users, ii, model.user_weights.double())
        users, items = model.embeddings()
    assert users.shape == (40, 8) and items.shape == (80, 8)
    torch.testing.assert_close(torch.cat([users, items]).double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("changes", [
    {},                                                # all users and items, InfoNCE in blocks of 7 anchors
    {"nce_chunk_rows": 0},                             # all nodes, one dense product
    {"nce_nodes": "batch"},                            # the batch's distinct users and items
    {"perturbed_encoders": "shared"},                  # views from the main encoders
])
def test_every_loss_term_matches_the_dense_reference(changes):
    data = small_data()
    model = _model(data, dataclasses.replace(EXACT, **changes))
    users, pos, neg = random_batch(data)
    users, pos, neg = users[:50], pos[:50], neg[:50]  # a batch leaving some users and items out
    with torch.no_grad():
        expected = reference(model, data, users, pos, neg)
        got = model.loss(users, pos, neg)
    assert set(got) == set(expected)
    for name in expected:
        assert got[name].item() == pytest.approx(expected[name].item(), rel=2e-5, abs=1e-7), name


def test_perturbed_hops_add_signed_normalised_uniform_noise_drawn_from_torch():
    data = small_data()
    inputs = data.inputs
    adjacency = dense_normalised_adjacency(inputs.train_pairs, inputs.n_users, inputs.n_items).float()
    x = torch.randn(len(adjacency), 3)
    torch.manual_seed(5)
    got = perturbed_layer_sum(sparse_csr(inputs.graphs["ui"]), x, 2, 0.1)
    torch.manual_seed(5)
    expected, h = x.clone(), x
    for _ in range(2):
        h = adjacency @ h
        draw = torch.rand(h.shape)
        h = h + torch.sign(h) * draw / draw.norm(dim=1, keepdim=True) * 0.1
        expected = expected + h
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(got, perturbed_layer_sum(sparse_csr(inputs.graphs["ui"]), x, 2, 0.1))


def test_gradients_reach_every_parameter():
    data = small_data()
    model = _model(data)
    model.loss(*random_batch(data))["loss"].backward()
    names = {name for name, _ in model.named_parameters()}
    assert names == {"id_features", "user_weights", "mask_mlp.weight", "mask_mlp.bias",
                     *(f"gcns.{m}.{p}" for m in ("visual", "text", "id") for p in PARAMETERS),
                     *(f"perturbed.{m}_{v}.{p}" for m in ("visual", "text") for v in ("n1", "n2") for p in PARAMETERS)}
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.count_nonzero(parameter.grad) > 0, name


def test_shared_perturbation_uses_the_main_encoders():
    data = small_data()
    model = _model(data, dataclasses.replace(SMALL, perturbed_encoders="shared"))
    assert model.perturbed is None
    model.loss(*random_batch(data))["loss"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.count_nonzero(parameter.grad) > 0, name


def test_the_codes_masking_term_is_a_constant_without_gradient():
    """feature_mask_grad: false computes the term as the code does, under no_grad: same value, no
    gradient to anything (the masking MLP never learns), every other gradient unchanged."""
    data = small_data()
    batch = random_batch(data)
    grads = {}
    for grad in (True, False):
        model = _model(data, dataclasses.replace(SMALL, feature_mask_grad=grad))
        torch.manual_seed(9)  # the same dropout masks and noise in both runs
        out = model.loss(*batch)
        if grad:
            paper = out
            (out["loss"] - out["mask_f"]).backward()
        else:
            assert not out["mask_f"].requires_grad
            assert out["mask_f"].item() == pytest.approx(paper["mask_f"].item(), rel=1e-6)
            assert out["loss"].item() == pytest.approx(paper["loss"].item(), rel=1e-6)
            out["loss"].backward()
        grads[grad] = {name: p.grad for name, p in model.named_parameters()}
    assert grads[False]["mask_mlp.weight"] is None and grads[False]["mask_mlp.bias"] is None
    for name, grad in grads[False].items():
        if not name.startswith("mask_mlp"):
            torch.testing.assert_close(grad, grads[True][name], atol=1e-7, rtol=1e-5)


def test_paper_masking_term_trains_the_mlp_and_the_embeddings():
    data = small_data()
    model = _model(data)
    model.loss(*random_batch(data))["mask_f"].backward()
    assert torch.count_nonzero(model.mask_mlp.weight.grad) > 0
    assert torch.count_nonzero(model.gcns["visual"].mlp.out.weight.grad) > 0


def test_noise_and_dropout_follow_the_torch_seed():
    data = small_data()
    model = _model(data)
    batch = random_batch(data)
    with torch.no_grad():
        torch.manual_seed(1)
        first = model.loss(*batch)
        torch.manual_seed(1)
        again = model.loss(*batch)
        second = model.loss(*batch)
    for name in first:
        assert torch.equal(first[name], again[name]), name
    assert first["mask_g"] != second["mask_g"] and first["mask_f"] != second["mask_f"]
    assert torch.equal(first["bpr"], second["bpr"])


def test_disabled_terms_build_and_log_nothing():
    data = small_data()
    model = _model(data, dataclasses.replace(SMALL, mask_weight_f=0.0, mask_weight_g=0.0, align_weight=0.0))
    assert model.mask_mlp is None and model.perturbed is None
    out = model.loss(*random_batch(data))
    assert set(out) == {"loss", "bpr", "reg"}
    assert out["loss"].item() == pytest.approx((out["bpr"] + out["reg"]).item())


def test_trains_in_the_engine_and_selects_on_recall_at_10():
    data = small_data()
    model = build_model(MENTOR, data, SMALL, seed=3)
    result = fit(model, data, TrainConfig(epochs=2, device="cpu", checkpoint=False), seed=3, progress=False)
    assert result.epochs == 2 and result.point.lr == 1e-4 and result.point.valid_metric == "recall@10"
    for record in result.history:
        terms = ("loss", "bpr", "reg", "align", "mask_f", "mask_g")
        assert all(np.isfinite(record[key]) for key in terms)
    assert set(model.user_modality_weights()) == {"visual", "text"}


def test_runs_repeat_exactly_with_the_seed():
    assert_runs_repeat(MENTOR, small_data(), SMALL)


def test_bad_config_fails_with_one_line():
    with pytest.raises(ConfigError, match="models.mentor.mask_dropout"):
        parse_params({"models": {"mentor": {"mask_dropout": 1.0}}})
    with pytest.raises(ConfigError, match="models.mentor.nce_nodes"):
        parse_params({"models": {"mentor": {"nce_nodes": "some"}}})
    with pytest.raises(ConfigError, match="models.mentor.nce_temperature"):
        parse_params({"models": {"mentor": {"nce_temperature": 0}}})


def test_needs_both_modalities():
    data = small_data()
    del data.inputs.features["visual"]
    with pytest.raises(ValueError, match=r"needs inputs \['visual'\]"):
        _model(data)


@needs_cuda
def test_trains_on_cuda():
    data = small_data()
    model = _model(data)
    cuda_round_trip(model, data)


@pytest.mark.slow
@needs_baby
def test_one_step_on_the_real_baby_graphs():
    data = baby_with_random_features(MENTOR.requires)
    model = _model(data, Config())
    out = one_step(model, data)
    assert all(torch.isfinite(value) for value in out.values())
    users, items = model.embeddings()
    assert users.shape == (19445, 128) and items.shape == (7050, 128)
