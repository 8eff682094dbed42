import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

import torch.nn.functional as F

from viral.config import ConfigError
from viral.graphs.user_item import normalized_adjacency
from viral.models import model_class
from viral.models.base import ModelInputs
from viral.models.viral import VIRAL, Config
from viral.params import parse_params
from viral.train.config import TrainConfig
from viral.train.data import TrainData, from_interactions
from viral.train.loop import build_model, fit
from viral.train.outputs import write_outputs

from .test_attention import reference_block, reference_tbr

FUSIONS = ["viral", "pooling", "concat", "weighted_concat"]


def _knn(x: np.ndarray, k: int) -> sp.csr_matrix:
    """Row-normalised top-k cosine graph (self included): a small stand-in for the graphs stage."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    top = np.argsort(-(x @ x.T), axis=1)[:, :k]
    rows = np.repeat(np.arange(len(x)), k)
    return sp.csr_matrix((np.full(rows.size, 1 / k, np.float32), (rows, top.ravel())), shape=(len(x), len(x)))


def tiny_inputs(visual_dim: int = 24, seed: int = 0) -> ModelInputs:
    rng = np.random.default_rng(seed)
    n_users, n_items = 30, 20
    pairs = np.unique(np.stack([rng.integers(0, n_users, 200), rng.integers(0, n_items, 200)], 1), axis=0)
    text = rng.normal(size=(n_items, 16)).astype(np.float32)
    visual = rng.normal(size=(n_items, visual_dim)).astype(np.float32)
    return ModelInputs(
        n_users,
        n_items,
        pairs,
        {"text": text, "visual": visual},
        {
            "ui": normalized_adjacency(pairs, n_users, n_items),
            "ii_viral": _knn(text, 4),
            "uu": _knn(rng.normal(size=(n_users, 5)), 3),
        },
    )


def _model(inputs: ModelInputs, seed: int = 0, **overrides) -> VIRAL:
    torch.manual_seed(seed)
    return VIRAL(inputs, Config(**{"attention_heads": 2, "ffn_mult": 2, **overrides}))


def _batch(inputs: ModelInputs, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    pairs = torch.from_numpy(inputs.train_pairs)
    neg = torch.randint(0, inputs.n_items, (len(pairs),), generator=generator)
    return pairs[:, 0], pairs[:, 1], neg


def test_registry_resolves_viral():
    assert model_class("viral") is VIRAL


@pytest.mark.parametrize("fusion, width", [("viral", 192), ("pooling", 64), ("concat", 128), ("weighted_concat", 128)])
def test_embedding_shapes(fusion, width):
    inputs = tiny_inputs()
    users, items = _model(inputs, fusion=fusion).embeddings()
    assert users.shape == (30, width) and items.shape == (20, width)


@pytest.mark.parametrize("mode, fusion_width", [("faithful", 0), ("scalable", 0), ("faithful", 8)])
def test_gradients_reach_every_parameter(mode, fusion_width):
    inputs = tiny_inputs(visual_dim=40)  # wider visual (like the 4096-d CNN feature): projected
    model = _model(inputs, synergy_mode=mode, fusion_width=fusion_width)
    assert model.fusion.visual_in is not None and (model.fusion.text_in is not None) == (fusion_width == 8)
    out = model.loss(*_batch(inputs))
    assert set(out) == {"loss", "bpr", "reg", "synergy_nce", "redundancy_nce"}
    out["loss"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.count_nonzero(parameter.grad) > 0, name


@pytest.mark.parametrize("fusion", FUSIONS)
def test_slot_inputs_have_the_feature_width_for_every_fusion(fusion):
    inputs = tiny_inputs(visual_dim=24)  # text 16-d, visual 24-d, attention width 8
    model = _model(inputs, fusion=fusion, fusion_width=8)
    slots, _ = model._slot_inputs()
    widths = {slot: mlp.hidden.in_features for slot, mlp in zip(model.slots, model.gcn.mlps)}
    expected = {"t": 16, "s": 8, "v": 24} if fusion == "viral" else {"t": 16, "v": 24}
    assert widths == expected
    assert {slot: slots[slot].shape[1] for slot in model.slots} == expected


def test_unique_visual_is_orthogonal_to_the_redundancy_in_feature_space():
    model = _model(tiny_inputs(visual_dim=24), fusion_width=8)  # attention at 8, r back in v's 24-d space
    assert model.fusion.visual_in is not None
    slots, views = model._slot_inputs()
    r = sum(model.fusion.redundancy.project(pooled) for pooled in views["redundancy"]) / 3
    assert r.shape == slots["v"].shape == model.visual.shape
    dots = (slots["v"] * r).sum(-1)
    assert torch.allclose(dots, torch.zeros_like(dots), atol=1e-4 * r.norm(dim=1).max().item())
    assert not torch.allclose(slots["v"], model.visual)


def _dense(inputs: ModelInputs, name: str, dtype) -> torch.Tensor:
    return torch.from_numpy(inputs.graphs[name].toarray()).to(dtype)


def _homogeneous(adj: torch.Tensor, x: torch.Tensor, n_layers: int, combine: str) -> torch.Tensor:
    hops = [x]
    for _ in range(n_layers):
        hops.append(adj @ hops[-1])
    if n_layers == 0:
        return x
    if combine == "last":
        return x + hops[-1]
    return sum(hops) if combine == "sum" else sum(hops) / (n_layers + 1)


def _info_nce(a: torch.Tensor, b: torch.Tensor, tau: float) -> torch.Tensor:
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / tau
    target = torch.arange(len(a))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def reference_loss(model: VIRAL, inputs: ModelInputs, users, pos, neg) -> torch.Tensor:
    """VIRAL's loss written out straightforwardly from the model's parameters: each CSE direction and each
    TBR sequence on its own with dense softmax attention, one dense GCN per slot, dense graphs."""
    cfg = model.config
    dtype = model.text.dtype
    text, visual = (torch.from_numpy(inputs.features[name]).to(dtype) for name in ("text", "visual"))
    slots, nce = {"t": text, "v": visual}, []
    fusion = model.fusion
    if fusion is not None:
        t = text if fusion.text_in is None else fusion.text_in(text)
        v = visual if fusion.visual_in is None else fusion.visual_in(visual)
        if fusion.synergy is not None:
            allowed = None
            if cfg.synergy_mode == "scalable":  # self + item-item neighbours
                allowed = (_dense(inputs, "ii_viral", dtype) != 0) | torch.eye(inputs.n_items, dtype=torch.bool)
            h = []
            for group, (query, context) in enumerate(((v, t), (t, v))):
                x = reference_block(fusion.synergy.cross, group, query, context, allowed)
                h.append(reference_block(fusion.synergy.own, group, x, x, allowed))
            slots["s"] = (h[0] + h[1]) / 2
            nce.append(("s", h[0], h[1]))
        if fusion.redundancy is not None:
            h, h_v, h_t = reference_tbr(fusion.redundancy, v, t)
            r = (h + h_v + h_t) / 3
            unique = visual - ((visual * r).sum(1, keepdim=True) / (r.pow(2).sum(1, keepdim=True) + 1e-8)) * r
            slots["v"] = F.normalize(unique, dim=1) if cfg.normalize_unique else unique
            nce += [("r", h, h_v), ("r", h, h_t), ("r", h_v, h_t)]
    ui, d, n = _dense(inputs, "ui", dtype), cfg.embedding_dim, inputs.n_users
    users_parts, items_parts, reg = [], [], 0.0
    for k, slot in enumerate(model.slots):
        mlp, preference = model.gcn.mlps[k], model.gcn.preference[:, k * d : (k + 1) * d]
        x = torch.cat([preference, mlp.out(F.leaky_relu(mlp.hidden(slots[slot])))])
        x = x / x.norm(dim=1, keepdim=True)
        x = _homogeneous(ui, x, cfg.n_ui_layers, "sum")  # eq. 2: layer sum
        weight = 1.0 if model.user_weights is None else model.user_weights[:, k : k + 1]
        users_parts.append(weight * x[:n])
        items_parts.append(x[n:])
        reg = reg + preference[users].pow(2).mean()
    if cfg.fusion == "pooling":
        user_f, item_f = sum(users_parts) / len(users_parts), sum(items_parts) / len(items_parts)
    else:
        user_f, item_f = torch.cat(users_parts, 1), torch.cat(items_parts, 1)
    z_u = _homogeneous(_dense(inputs, "uu", dtype), user_f, cfg.n_uu_layers, cfg.uu_combine)
    z_i = _homogeneous(_dense(inputs, "ii_viral", dtype), item_f, cfg.n_ii_layers, cfg.ii_combine)
    bpr = -F.logsigmoid((z_u[users] * z_i[pos]).sum(1) - (z_u[users] * z_i[neg]).sum(1)).mean()
    if model.user_weights is not None:
        reg = reg + model.user_weights.pow(2).mean()
    items = pos.unique()
    fusion_terms = sum(_info_nce(a[items], b[items], cfg.nce_temperature) for _, a, b in nce)
    return bpr + cfg.reg_weight * reg + cfg.fusion_weight * fusion_terms


FAST_VS_REFERENCE = [
    dict(synergy_mode="faithful", fusion_width=8),
    dict(synergy_mode="scalable", fusion_width=0, attention_heads=1),
    dict(synergy_mode="faithful", fusion_width=0, ii_combine="sum", uu_combine="mean", normalize_unique=True),
    dict(synergy_mode="scalable", fusion_width=8, slot_order="v_s_t", n_ii_layers=1, n_uu_layers=3),
    dict(synergy=False, fusion_width=8),
    dict(redundancy=False, fusion_width=8, ii_combine="mean", uu_combine="sum"),
    dict(fusion="pooling"),
    dict(fusion="concat", n_ui_layers=1),
    dict(fusion="weighted_concat", uu_combine="mean"),
]


@pytest.mark.parametrize("overrides", FAST_VS_REFERENCE, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_fast_step_gives_the_reference_loss_and_gradients(overrides):
    inputs = tiny_inputs(visual_dim=24)
    model = _model(inputs, **overrides).double()  # float64: differences are the implementation's alone
    users, pos, neg = _batch(inputs)
    out = model.loss(users, pos, neg)
    expected = reference_loss(model, inputs, users, pos, neg)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-10)
    parameters = [p for p in model.parameters()]
    got = torch.autograd.grad(out["loss"], parameters)
    want = torch.autograd.grad(expected, parameters)
    for (name, _), a, b in zip(model.named_parameters(), got, want):
        assert torch.allclose(a, b, rtol=1e-7, atol=1e-12), name


def _dragon_reference(model: VIRAL, inputs: ModelInputs) -> tuple[torch.Tensor, torch.Tensor]:
    """DRAGON's attentive concatenation written out densely from the model's own parameters."""
    ui = torch.from_numpy(inputs.graphs["ui"].toarray())
    ii = torch.from_numpy(inputs.graphs["ii_viral"].toarray())
    uu = torch.from_numpy(inputs.graphs["uu"].toarray())
    parts = []
    d = model.config.embedding_dim
    for k, name in enumerate(("text", "visual")):
        mlp, preference = model.gcn.mlps[k], model.gcn.preference[:, k * d : (k + 1) * d]
        feature = torch.from_numpy(inputs.features[name])
        x = torch.cat([preference, mlp.out(torch.nn.functional.leaky_relu(mlp.hidden(feature)))])
        x = x / x.norm(dim=1, keepdim=True)
        parts.append(x + ui @ x + ui @ ui @ x)
    n = inputs.n_users
    w = model.user_weights
    user = torch.cat([w[:, :1] * parts[0][:n], w[:, 1:] * parts[1][:n]], 1)
    item = torch.cat([parts[0][n:], parts[1][n:]], 1)
    return user + uu @ uu @ user, item + ii @ ii @ item


def test_viral_without_synergy_redundancy_and_lambda_is_dragon_weighted_concat():
    inputs = tiny_inputs(visual_dim=16)
    reduced = _model(inputs, synergy=False, redundancy=False, fusion_weight=0.0)
    weighted = _model(inputs, fusion="weighted_concat")
    batch = _batch(inputs)
    with torch.no_grad():
        expected_user, expected_item = _dragon_reference(weighted, inputs)
        for model in (reduced, weighted):
            users, items = model.embeddings()
            assert torch.allclose(users, expected_user, atol=1e-4)
            assert torch.allclose(items, expected_item, atol=1e-4)
        assert reduced.loss(*batch)["loss"].item() == pytest.approx(weighted.loss(*batch)["loss"].item(), rel=1e-5)


@pytest.mark.parametrize("fusion", FUSIONS)
def test_training_steps_reduce_the_loss(fusion):
    inputs = tiny_inputs()
    model = _model(inputs, fusion=fusion, synergy_mode="scalable" if fusion == "viral" else "faithful")
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = _batch(inputs)
    losses = []
    for _ in range(4):
        out = model.loss(*batch)
        optimiser.zero_grad()
        out["loss"].backward()
        optimiser.step()
        losses.append(out["loss"].item())
    assert losses[-1] < losses[0]
    assert ("synergy_nce" in out) == (fusion == "viral")


def test_graphs_and_features_are_not_saved_with_the_weights():
    state = _model(tiny_inputs(), synergy_mode="scalable").state_dict()
    assert not {"ui", "ii", "uu", "ii_t", "uu_t", "text", "visual", "neighbours"} & set(state)


def test_feature_rows_must_match_items():
    inputs = tiny_inputs()
    inputs.features["visual"] = inputs.features["visual"][:-1]
    with pytest.raises(ValueError, match=r"features\['visual'\]: expected \(20, d\)"):
        _model(inputs)


def test_bad_model_params_fail_with_one_line():
    with pytest.raises(ConfigError, match=r"models.viral.nce_temperature: expected > 0, got 0.0"):
        parse_params({"models": {"viral": {"nce_temperature": 0.0}}})
    with pytest.raises(ConfigError, match="models.viral.synergy_mode: got 'exact'"):
        parse_params({"models": {"viral": {"synergy_mode": "exact"}}})
    with pytest.raises(ConfigError, match=r"models.viral.fusion_width: expected >= 0 \(0 = text feature width\), got -1"):
        parse_params({"models": {"viral": {"fusion_width": -1}}})
    with pytest.raises(ConfigError, match="models.viral.uu_combine: got 'max'"):
        parse_params({"models": {"viral": {"uu_combine": "max"}}})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("mode", ["faithful", "scalable"])
def test_cuda_gives_the_cpu_loss_and_gradients(mode):
    inputs = tiny_inputs(visual_dim=24)
    results = []
    for device in ("cpu", "cuda"):
        model = _model(inputs, synergy_mode=mode, fusion_width=8).to(device)
        out = model.loss(*(t.to(device) for t in _batch(inputs)))
        gradients = torch.autograd.grad(out["loss"], list(model.parameters()))
        results.append((out["loss"].item(), torch.cat([g.flatten().cpu() for g in gradients])))
    (cpu_loss, cpu_grad), (cuda_loss, cuda_grad) = results
    assert cuda_loss == pytest.approx(cpu_loss, rel=1e-5)
    assert ((cuda_grad - cpu_grad).norm() / cpu_grad.norm()).item() < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_cuda():
    inputs = tiny_inputs()
    model = _model(inputs).to("cuda")
    out = model.loss(*(t.to("cuda") for t in _batch(inputs)))
    out["loss"].backward()
    users, items = model.embeddings()
    assert users.is_cuda and items.is_cuda


BABY = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "baby"


@pytest.mark.slow
@pytest.mark.skipif(not (BABY / "baby.inter").is_file(), reason="real Baby data (../shared/data/baby) not present")
def test_one_step_on_the_real_baby_graph():
    from viral.data.mmrec import read_inter
    from viral.graphs.item_item import item_item_graph
    from viral.graphs.user_user import user_user_graph
    from viral.train.data import from_interactions

    frame = read_inter(BABY / "baby.inter")
    n_users, n_items = int(frame.userID.max()) + 1, int(frame.itemID.max()) + 1
    inputs = from_interactions(frame, n_users, n_items).inputs
    rng = np.random.default_rng(0)
    inputs.features = {name: rng.standard_normal((n_items, 384), dtype=np.float32) for name in ("text", "visual")}
    inputs.graphs = {
        "ui": normalized_adjacency(inputs.train_pairs, n_users, n_items),
        "ii_viral": item_item_graph(inputs.features, k=10),
        "uu": user_user_graph(inputs.train_pairs, n_users, n_items, k=10),
    }
    model = _model(inputs, synergy_mode="scalable", fusion_width=64)
    pairs = torch.from_numpy(inputs.train_pairs[:1024])
    out = model.loss(pairs[:, 0], pairs[:, 1], torch.randint(0, n_items, (1024,)))
    out["loss"].backward()
    assert all(torch.isfinite(value) for value in out.values())
    users, items = model.embeddings()
    assert users.shape == (19445, 192) and items.shape == (7050, 192)


def test_summary_records_the_synergy_choice():
    inputs = tiny_inputs()
    assert _model(inputs, synergy_mode="scalable").summary()["synergy_mode"] == "scalable"
    assert _model(inputs, fusion="concat").summary() == {
        "fusion": "concat", "synergy": False, "synergy_mode": "off", "redundancy": False, "fusion_width": 64}


def test_learned_user_weights_are_reported_per_slot():
    inputs = tiny_inputs()
    model = VIRAL(inputs, Config(fusion_width=8, feat_hidden_dim=8, embedding_dim=4))
    weights = model.user_modality_weights()
    assert list(weights) == ["text", "synergy", "visual"]
    assert all(w.shape == (inputs.n_users,) for w in weights.values())
    assert VIRAL(inputs, Config(fusion="concat", feat_hidden_dim=8, embedding_dim=4)).user_modality_weights() == {}


def engine_data(seed: int = 0) -> TrainData:
    """40 users x 6 items each (the last two held out as valid/test), with features and graphs."""
    rng = np.random.default_rng(seed)
    n_users, n_items, per_user = 40, 25, 6
    frame = pd.DataFrame({"userID": np.repeat(np.arange(n_users), per_user),
                          "itemID": np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)]),
                          "split": np.tile([0, 0, 0, 0, 1, 2], n_users)})
    data = from_interactions(frame, n_users, n_items, "tiny")
    inputs = data.inputs
    inputs.features = {"text": rng.normal(size=(n_items, 16)).astype(np.float32),
                       "visual": rng.normal(size=(n_items, 24)).astype(np.float32)}
    inputs.graphs = {"ui": normalized_adjacency(inputs.train_pairs, n_users, n_items),
                     "ii_viral": _knn(inputs.features["text"], 4), "uu": _knn(rng.normal(size=(n_users, 5)), 3)}
    return data


def _without_timing(history):
    return [{k: v for k, v in record.items() if "seconds" not in k} for record in history]


def test_trains_through_the_engine_writes_metrics_and_resumes(tmp_path):
    data = engine_data()
    config = Config(attention_heads=2, ffn_mult=2, fusion_width=8)
    train = TrainConfig(epochs=4, batch_size=64, lr=0.01, patience=50, device="cpu", checkpoint=True)
    straight = build_model(VIRAL, data, config, seed=3)
    expected = fit(straight, data, train, seed=3, checkpoint=tmp_path / "straight.pt", progress=False)
    assert expected.epochs == 4 and len(expected.history) == 4
    for record in expected.history:
        assert {"loss", "bpr", "reg", "synergy_nce", "redundancy_nce", "valid_recall@20"} <= set(record)
        assert all(np.isfinite(record[key]) for key in ("loss", "bpr", "reg", "synergy_nce", "redundancy_nce"))
    write_outputs(expected, tmp_path / "results", tmp_path / "report.json", "viral", "tiny", {}, straight.summary())
    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert metrics["test"] == expected.test and metrics["synergy_mode"] == "faithful"
    assert 0 <= metrics["test"]["recall@20"] <= 1

    first = build_model(VIRAL, data, config, seed=3)
    fit(first, data, replace(train, epochs=2), seed=3, checkpoint=tmp_path / "state.pt", progress=False)
    resumed = build_model(VIRAL, data, config, seed=3)
    calls = []
    original = resumed.loss
    resumed.loss = lambda *batch: calls.append(1) or original(*batch)
    result = fit(resumed, data, train, seed=3, checkpoint=tmp_path / "state.pt", progress=False)
    assert len(calls) == 2 * 3  # only epochs 3 and 4 were trained (160 pairs / 64: 3 batches each)
    assert _without_timing(result.history) == _without_timing(expected.history)
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), straight.state_dict().values()))
