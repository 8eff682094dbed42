from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from viral.config import ConfigError
from viral.graphs.user_item import normalized_adjacency
from viral.models import model_class
from viral.models.base import ModelInputs
from viral.models.viral import VIRAL, Config
from viral.params import parse_params

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
    return VIRAL(inputs, Config(attention_heads=2, ffn_mult=2, **overrides))


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
    assert model.visual_proj is not None and (model.text_proj is not None) == (fusion_width == 8)
    out = model.loss(*_batch(inputs))
    assert set(out) == {"loss", "bpr", "reg", "synergy_nce", "redundancy_nce"}
    out["loss"].backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.count_nonzero(parameter.grad) > 0, name


def test_unique_visual_is_orthogonal_to_the_redundancy():
    model = _model(tiny_inputs(visual_dim=16), fusion_width=0)  # features enter unprojected
    slots, views = model._slot_inputs()
    r = sum(views["redundancy"]) / 3
    dots = (slots["v"] * r).sum(-1)
    assert torch.allclose(dots, torch.zeros_like(dots), atol=1e-4 * r.norm(dim=1).max().item())
    assert model.visual_proj is None and not torch.allclose(slots["v"], model.visual)


def _dragon_reference(model: VIRAL, inputs: ModelInputs) -> tuple[torch.Tensor, torch.Tensor]:
    """DRAGON's attentive concatenation written out densely from the model's own parameters."""
    ui = torch.from_numpy(inputs.graphs["ui"].toarray())
    ii = torch.from_numpy(inputs.graphs["ii_viral"].toarray())
    uu = torch.from_numpy(inputs.graphs["uu"].toarray())
    parts = []
    for name, slot in (("text", "t"), ("visual", "v")):
        gcn = model.gcns[slot]
        feature = torch.from_numpy(inputs.features[name])
        x = torch.cat([gcn.preference, gcn.out(torch.nn.functional.leaky_relu(gcn.hidden(feature)))])
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
    with pytest.raises(ConfigError, match="models.viral.nce_temperature: expected > 0"):
        parse_params({"models": {"viral": {"nce_temperature": 0.0}}})
    with pytest.raises(ConfigError, match="models.viral.synergy_mode: got 'exact'"):
        parse_params({"models": {"viral": {"synergy_mode": "exact"}}})


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
