"""MMGCN against a dense reference of the paper's layers (mean aggregation, ID-aware transform,
combination) and of MMRec's loss; the ID embedding and the user preferences learn (the test MMRec's and
the authors' code fail: there they are plain tensors), or stay frozen with `train_id_and_preference:
false`; a short fit."""
import pytest
import torch
import torch.nn.functional as F

from viral.models import model_class
from viral.models.base import ModelInputs
from viral.models.mmgcn import MMGCN, Config

from .baseline_checks import batch as _batch
from .baseline_checks import cuda_matches_cpu, feature_inputs, interleaved_reference, needs_cuda, short_fit
from .baseline_checks import double as _p

SMALL = {"embedding_dim": 4, "visual_latent_dim": 5}


def tiny_inputs() -> ModelInputs:
    return feature_inputs(11, 8, text_dim=6, visual_dim=20)


def _reference(model: MMGCN, inputs: ModelInputs, config: Config) -> torch.Tensor:
    """All node embeddings (users first), float64, written from the paper with a dense adjacency."""
    n_users, n = inputs.n_users, inputs.n_users + inputs.n_items
    a = torch.zeros(n, n, dtype=torch.float64)
    for u, i in inputs.train_pairs:
        a[u, n_users + i] = a[n_users + i, u] = 1.0
    mean = a / a.sum(1, keepdim=True).clamp(min=1)
    ids = _p(model.id_embedding)
    outputs = []
    for name in ("text", "visual"):
        gcn = model.gcns[name]
        items = torch.from_numpy(inputs.features[name]).double()
        if name == "visual":
            items = items @ _p(gcn.project.weight).T + _p(gcn.project.bias)
        x = torch.cat([_p(gcn.preference), items])
        x = x / x.norm(dim=1, keepdim=True)
        for layer in range(config.n_layers):
            h = F.leaky_relu(mean @ x @ _p(gcn.aggregate[layer]))
            t = gcn.transform[layer]
            x_hat = F.leaky_relu(x @ _p(t.weight).T + _p(t.bias)) + ids
            g = gcn.combine[layer]
            if config.combine == "concat":
                x = F.leaky_relu(torch.cat([h, x_hat], 1) @ _p(g.weight).T + _p(g.bias))
            else:
                x = F.leaky_relu(h @ _p(g.weight).T + _p(g.bias) + x_hat)
        outputs.append(x)
    return (outputs[0] + outputs[1]) / 2


def _reference_loss(model: MMGCN, nodes: torch.Tensor, users, pos, neg, config: Config) -> torch.Tensor:
    """MMRec's calculate_loss: BPR, L2 on the ID rows and on the (visual) preference of every user."""
    bpr, reg, _ = interleaved_reference(nodes, model.id_embedding, model.n_users, users, pos, neg)
    reg = reg + (_p(model.gcns["visual"].preference) ** 2).mean()
    if config.reg_preferences == "all":
        reg = reg + (_p(model.gcns["text"].preference) ** 2).mean()
    return bpr + config.reg_weight * reg


def test_registry_resolves_mmgcn():
    assert model_class("mmgcn") is MMGCN


@pytest.mark.parametrize("overrides", [{}, {"combine": "add", "n_layers": 2, "reg_preferences": "all"},
                                       {"train_id_and_preference": False, "n_layers": 1}])
def test_embeddings_and_loss_match_the_dense_reference(overrides):
    inputs = tiny_inputs()
    config = Config(**SMALL, reg_weight=0.2, **overrides)
    torch.manual_seed(0)
    model = MMGCN(inputs, config)
    batch = _batch(inputs)
    expected = _reference(model, inputs, config)
    with torch.no_grad():
        users, items = model.embeddings()
        out = model.loss(*batch)
    assert torch.allclose(torch.cat([users, items]).double(), expected, atol=1e-5)
    assert out["loss"].item() == pytest.approx(_reference_loss(model, expected, *batch, config).item(), rel=1e-4)
    assert out["loss"].item() == pytest.approx((out["bpr"] + out["reg"]).item(), rel=1e-6)


def test_gradients_reach_every_parameter_including_the_id_embedding_and_preferences():
    inputs = tiny_inputs()
    model = MMGCN(inputs, Config(**SMALL))
    model.loss(*_batch(inputs))["loss"].backward()
    names = {name for name, _ in model.named_parameters()}
    assert {"id_embedding", "gcns.text.preference", "gcns.visual.preference"} <= names
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.count_nonzero(parameter.grad) > 0, name


def test_the_codes_frozen_tensors_are_saved_but_never_trained():
    config = Config(**SMALL, train_id_and_preference=False)
    model, initial = short_fit(MMGCN, config, learns="gcns.visual.project.weight")
    frozen = {"id_embedding", "gcns.text.preference", "gcns.visual.preference"}
    assert not frozen & {name for name, _ in model.named_parameters()} and frozen <= set(model.state_dict())
    assert all(torch.equal(model.state_dict()[name], initial[name]) for name in frozen)


def test_a_short_fit_trains_with_finite_losses():
    short_fit(MMGCN, Config(**SMALL), learns="id_embedding")


def test_graphs_and_features_are_not_saved_with_the_weights():
    state = MMGCN(tiny_inputs(), Config(**SMALL)).state_dict()
    assert not {"adjacency", "adjacency_t", "text", "visual"} & set(state)


@needs_cuda
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    inputs = tiny_inputs()
    cuda_matches_cpu(MMGCN(inputs, Config(**SMALL)), inputs)
