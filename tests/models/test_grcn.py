"""GRCN against a dense reference of the paper (routing, graph attention, confidence-weighted max over
modalities with ReLU pruning, ID GCN, [id || v || t]) and of the authors' loss; `n_routing: 0` computes
what MMRec's and the authors' code compute; gradients reach every weight; a short fit."""
import pytest
import torch
import torch.nn.functional as F

from viral.models import model_class
from viral.models.base import ModelInputs
from viral.models.grcn import GRCN, Config

from .baseline_checks import batch as _batch
from .baseline_checks import cuda_matches_cpu, feature_inputs, interleaved_reference, needs_cuda, short_fit
from .baseline_checks import double as _p

SMALL = {"embedding_dim": 4, "content_dim": 5}


def tiny_inputs(seed: int = 0) -> ModelInputs:
    return feature_inputs(11, 9, text_dim=6, visual_dim=11, seed=seed)


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=1).nan_to_num(0.0)


def _reference(model: GRCN, inputs: ModelInputs, n_routing: int, code_routing: bool = False) -> torch.Tensor:
    """All node embeddings (users first), float64, with dense matrices.

    code_routing: the routing step as MMRec's code runs it, PyG message passing on the (user -> item)
    edge list, which sums the attention-weighted user messages into the ITEM rows; the users then add
    their own (empty) rows."""
    n_users, n_items = inputs.n_users, inputs.n_items
    r = torch.zeros(n_users, n_items, dtype=torch.bool)
    r[inputs.train_pairs[:, 0], inputs.train_pairs[:, 1]] = True
    adjacency = torch.zeros(n_users + n_items, n_users + n_items, dtype=torch.bool)
    adjacency[:n_users, n_users:] = r
    adjacency[n_users:, :n_users] = r.T
    contents, attentions = [], []
    for name in ("visual", "text"):
        gcn = model.content[name]
        raw = torch.from_numpy(inputs.features[name]).double()
        items = F.normalize(F.leaky_relu(raw @ _p(gcn.project.weight).T + _p(gcn.project.bias)), dim=1)
        users = F.normalize(_p(gcn.preference), dim=1)
        for _ in range(n_routing):
            if code_routing:
                alpha = _masked_softmax(items @ users.T, r.T)  # each item over its users
                received = torch.cat([torch.zeros_like(users), alpha @ users])
                users = F.normalize(users + received[:n_users], dim=1)
            else:
                alpha = _masked_softmax(users @ items.T, r)  # each user over its items
                users = F.normalize(users + alpha @ items, dim=1)
        x = torch.cat([users, items])
        attention = _masked_softmax(x @ x.T, adjacency)  # [t, s]: t's attention to its neighbour s
        contents.append(x + attention @ x)
        attentions.append(attention)
    confidence = _p(model.confidence)
    weights = torch.relu(torch.maximum(attentions[0] * confidence[None, :, 0], attentions[1] * confidence[None, :, 1]))
    x = F.normalize(_p(model.id_embedding), dim=1)
    ids = x + weights @ x + weights @ weights @ x
    return torch.cat([ids, *contents], dim=1)


def _reference_loss(model: GRCN, nodes: torch.Tensor, users, pos, neg, reg_weight: float) -> torch.Tensor:
    """The authors' loss: BPR, L2 on the ID rows and the batch users' preferences."""
    bpr, reg, user_rows = interleaved_reference(nodes, model.id_embedding, model.n_users, users, pos, neg)
    reg = reg + sum((_p(model.content[name].preference)[user_rows] ** 2).mean() for name in ("visual", "text"))
    return bpr + reg_weight * reg


def test_registry_resolves_grcn():
    assert model_class("grcn") is GRCN


@pytest.mark.parametrize("n_routing", [0, 1, 3])
def test_embeddings_and_loss_match_the_dense_reference(n_routing):
    inputs = tiny_inputs()
    torch.manual_seed(0)
    model = GRCN(inputs, Config(**SMALL, n_routing=n_routing, reg_weight=0.3))
    with torch.no_grad():
        model.confidence.normal_()  # both signs, so that pruning removes some edges
    batch = _batch(inputs)
    expected = _reference(model, inputs, n_routing)
    with torch.no_grad():
        users, items = model.embeddings()
        out = model.loss(*batch)
    assert users.shape == (11, 14) and items.shape == (9, 14)
    assert torch.allclose(torch.cat([users, items]).double(), expected, atol=1e-5)
    assert out["loss"].item() == pytest.approx(_reference_loss(model, expected, *batch, 0.3).item(), rel=1e-4)


def test_routing_matters_and_n_routing_0_is_what_the_code_computes():
    inputs = tiny_inputs(1)
    torch.manual_seed(0)
    model = GRCN(inputs, Config(**SMALL, n_routing=0))
    with torch.no_grad():
        code = _reference(model, inputs, n_routing=3, code_routing=True)
        assert torch.allclose(torch.cat(model.embeddings()).double(), code, atol=1e-5)
        assert not torch.allclose(_reference(model, inputs, n_routing=3), code, atol=1e-3)


def test_pruning_removes_edges_with_negative_weight():
    inputs = tiny_inputs()
    model = GRCN(inputs, Config(**SMALL))
    with torch.no_grad():
        model.confidence.fill_(-1.0)  # every edge weight negative -> all pruned: the ID GCN adds nothing
        users, items = model.embeddings()
    ids = F.normalize(model.id_embedding.detach(), dim=1)
    assert torch.allclose(torch.cat([users, items])[:, :4], ids)


def test_gradients_reach_every_parameter():
    inputs = tiny_inputs()
    model = GRCN(inputs, Config(**SMALL))
    model.loss(*_batch(inputs))["loss"].backward()
    names = {name for name, _ in model.named_parameters()}
    assert {"id_embedding", "confidence", "content.visual.preference", "content.text.preference",
            "content.visual.project.weight", "content.text.project.weight"} <= names
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.count_nonzero(parameter.grad) > 0, name


def test_a_short_fit_trains_with_finite_losses():
    short_fit(GRCN, Config(embedding_dim=8, content_dim=8), learns="confidence")


def test_cpu_runs_repeat_bit_for_bit():
    """The learned-weight sparse products and their gathers add in a fixed order on CPU, threads or not."""
    config = Config(embedding_dim=8, content_dim=8)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        first, _ = short_fit(GRCN, config, learns="confidence")
        second, _ = short_fit(GRCN, config, learns="confidence")
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(value, second.state_dict()[name]) for name, value in first.state_dict().items())


def test_graphs_and_features_are_not_saved_with_the_weights():
    state = GRCN(tiny_inputs(), Config(**SMALL)).state_dict()
    assert not {"text", "visual"} & set(state) and not any(key.startswith("graph.") for key in state)


@needs_cuda
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    inputs = tiny_inputs()
    cuda_matches_cpu(GRCN(inputs, Config(**SMALL)), inputs)
