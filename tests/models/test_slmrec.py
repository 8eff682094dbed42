"""SLMRec against a dense reference written here: three separate LightGCNs (ID, visual, text) with a
shared user table, the output Linears, the in-batch InfoNCE written as explicit softmax sums, and FAC;
gradients; and a run through the engine with in-batch negatives (`negatives: false`)."""
import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.models.test_lattice import engine_data, reads_features_through_buffers
from viral.graphs.user_item import normalized_adjacency
from viral.models import model_class
from viral.models.base import ModelInputs
from viral.models.losses import one_way_info_nce
from viral.models.slmrec import SLMRec, Config
from viral.train.config import TrainConfig
from viral.train.loop import build_model, fit


def tiny_inputs(seed: int = 0) -> ModelInputs:
    rng = np.random.default_rng(seed)
    n_users, n_items = 30, 25
    pairs = np.unique(np.stack([rng.integers(0, n_users, 200), rng.integers(0, n_items, 200)], 1), axis=0)
    features = {"visual": rng.normal(size=(n_items, 20)).astype(np.float32),
                "text": rng.normal(size=(n_items, 12)).astype(np.float32)}
    return ModelInputs(n_users, n_items, pairs, features, {"ui": normalized_adjacency(pairs, n_users, n_items)})


def make(inputs: ModelInputs, seed: int = 0, **overrides) -> SLMRec:
    torch.manual_seed(seed)
    return SLMRec(inputs, Config(embedding_dim=8, **overrides))


def lightgcn_mean(ui: torch.Tensor, users: torch.Tensor, items: torch.Tensor, layers: int) -> torch.Tensor:
    x = torch.cat([users, items])
    out, total = x, x
    for _ in range(layers):
        out = ui @ out
        total = total + out
    return total / (layers + 1)


def reference_views(model: SLMRec, inputs: ModelInputs):
    """Each view's LightGCN run on its own, as the code does: (users, items) per view."""
    ui = torch.tensor(inputs.graphs["ui"].toarray())
    visual = F.normalize(torch.from_numpy(inputs.features["visual"]), dim=1)
    text = F.normalize(torch.from_numpy(inputs.features["text"]), dim=1)
    item_inputs = {"id": model.item_embedding, "visual": model.visual_dense(visual), "text": model.text_dense(text)}
    n = inputs.n_users
    views = {}
    for name, items in item_inputs.items():
        out = lightgcn_mean(ui, model.user_embedding, items, model.config.n_layers)
        views[name] = (out[:n], out[n:])
    return views


def reference_embeddings(model: SLMRec, inputs: ModelInputs):
    views = reference_views(model, inputs)
    users = model.user_out(torch.cat([views[v][0] for v in ("id", "visual", "text")], 1))
    items = model.item_out(torch.cat([views[v][1] for v in ("id", "visual", "text")], 1))
    return users, items, views


def softmax_nce(queries: torch.Tensor, keys: torch.Tensor, tau: float) -> torch.Tensor:
    """-mean_i log( exp(q_i.k_i / tau) / sum_j exp(q_i.k_j / tau) ), written out."""
    terms = []
    for i in range(len(queries)):
        scores = torch.stack([(queries[i] * keys[j]).sum() / tau for j in range(len(keys))])
        terms.append(torch.logsumexp(scores, 0) - scores[i])
    return torch.stack(terms).mean()


def reference_loss(model: SLMRec, inputs: ModelInputs, users, pos):
    user_all, item_all, views = reference_embeddings(model, inputs)
    u, p = F.normalize(user_all[users], dim=1), F.normalize(item_all[pos], dim=1)
    main = softmax_nce(u, p, model.config.temperature)
    tau = model.config.ssl_temp
    id_fine = model.id_to_iv(views["id"][1][pos])
    fine = softmax_nce(id_fine, model.visual_to_iv(views["visual"][1][pos]), tau)
    coarse = softmax_nce(model.iva_to_ivat(model.iv_to_iva(id_fine)), model.text_to_ivat(views["text"][1][pos]), tau)
    return main, fine + coarse


def batch(inputs: ModelInputs, size: int = 24, seed: int = 0):
    order = np.random.default_rng(seed).permutation(len(inputs.train_pairs))[:size]
    pairs = torch.from_numpy(inputs.train_pairs[order])
    return pairs[:, 0], pairs[:, 1]


def test_registry_resolves_slmrec_and_its_point_uses_in_batch_negatives():
    assert model_class("slmrec") is SLMRec
    point = Config().train
    assert (point.negatives, point.lr, point.weight_decay, point.batch_size) == (False, 0.01, 1e-4, 2048)


def test_unnormalised_in_batch_nce_by_hand():
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    keys = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    # row 0: scores (2, 1) -> log(e^2 + e^1) - 2; row 1: scores (0, 1) -> log(1 + e) - 1
    expected = ((math.log(math.e**2 + math.e) - 2) + (math.log(1 + math.e) - 1)) / 2
    assert one_way_info_nce(queries, keys, 1.0, normalize=False).item() == pytest.approx(expected, rel=1e-6)
    assert one_way_info_nce(queries, keys, 0.5, normalize=False).item() == pytest.approx(
        softmax_nce(queries, keys, 0.5).item(), rel=1e-6)


def test_embeddings_match_the_dense_reference():
    inputs = tiny_inputs()
    model = make(inputs)
    with torch.no_grad():
        users, items = model.embeddings()
        expected_users, expected_items, _ = reference_embeddings(model, inputs)
    assert users.shape == (30, 8) and items.shape == (25, 8)
    assert torch.allclose(users, expected_users.float(), atol=1e-5)
    assert torch.allclose(items, expected_items.float(), atol=1e-5)


def test_loss_matches_the_reference_and_every_parameter_learns():
    inputs = tiny_inputs()
    model = make(inputs, ssl_alpha=0.5)
    users, pos = batch(inputs)
    out = model.loss(users, pos, None)
    assert set(out) == {"loss", "infonce", "fac"}
    main, fac = reference_loss(model, inputs, users, pos)
    assert out["infonce"].item() == pytest.approx(main.item(), rel=1e-5)
    assert out["fac"].item() == pytest.approx(fac.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(main.item() + 0.5 * fac.item(), rel=1e-5)
    out["loss"].backward()
    got = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    (main + 0.5 * fac).backward()
    for name, parameter in model.named_parameters():
        assert torch.count_nonzero(got[name]) > 0, name
        assert torch.allclose(got[name], parameter.grad.float(), rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize("modality", ["visual", "text"])
def test_features_are_read_through_the_modality_buffers(modality):
    assert reads_features_through_buffers(make(tiny_inputs()), modality)


def test_short_fit_through_the_engine_without_sampled_negatives():
    data = engine_data()
    model = build_model(SLMRec, data, dataclasses.replace(Config(), embedding_dim=8), seed=0)
    result = fit(model, data, TrainConfig(epochs=2, device="cpu", checkpoint=False), seed=0, progress=False)
    assert result.epochs == 2 and not result.point.negatives
    assert all(np.isfinite(record["loss"]) and np.isfinite(record["fac"]) for record in result.history)
    assert 0 <= result.test["recall@20"] <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_forward_runs_on_cuda():
    inputs = tiny_inputs()
    model = make(inputs).cuda()
    users, pos = (t.cuda() for t in batch(inputs))
    model.loss(users, pos, None)["loss"].backward()
    with torch.no_grad():
        users_emb, items_emb = model.embeddings()
    assert users_emb.is_cuda and items_emb.is_cuda
