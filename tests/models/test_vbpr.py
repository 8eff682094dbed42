"""VBPR against a dense reference: user . [ID || E (t || v) + b], BPR plus EmbLoss on the batch's
user, positive and negative embeddings; gradients reach every weight; a short fit."""
import numpy as np
import pytest
import torch

from viral.models import model_class
from viral.models.base import ModelInputs, mean_feature
from viral.models.vbpr import VBPR, Config

from .baseline_checks import batch as _batch
from .baseline_checks import cuda_matches_cpu, double, feature_inputs, needs_cuda, short_fit


def tiny_inputs() -> ModelInputs:
    return feature_inputs(12, 9, text_dim=5, visual_dim=7)


def _reference(model: VBPR, inputs: ModelInputs, users, pos, neg, reg_weight):
    """The paper's scoring, written densely from the model's weights (float64)."""
    raw = torch.from_numpy(np.hstack([inputs.features["text"], inputs.features["visual"]])).double()
    content = raw @ double(model.content.weight).T + double(model.content.bias)
    items = torch.cat([double(model.item_embedding), content], dim=1)
    users_all = double(model.user_embedding)
    u, p, n = users_all[users], items[pos], items[neg]
    bpr = -torch.log(torch.sigmoid((u * p).sum(1) - (u * n).sum(1))).mean()
    reg = reg_weight * (torch.linalg.norm(u) + torch.linalg.norm(p) + torch.linalg.norm(n)) / len(users)
    return users_all, items, bpr, reg


def test_registry_resolves_vbpr():
    assert model_class("vbpr") is VBPR


def test_embeddings_and_loss_match_the_dense_reference():
    inputs = tiny_inputs()
    torch.manual_seed(0)
    model = VBPR(inputs, Config(embedding_dim=3, reg_weight=0.3))
    batch = _batch(inputs)
    users_ref, items_ref, bpr, reg = _reference(model, inputs, *batch, reg_weight=0.3)
    with torch.no_grad():
        users, items = model.embeddings()
        out = model.loss(*batch)
    assert users.shape == (12, 6) and items.shape == (9, 6)
    assert torch.allclose(users.double(), users_ref) and torch.allclose(items.double(), items_ref, atol=1e-6)
    assert out["bpr"].item() == pytest.approx(bpr.item(), rel=1e-5)
    assert out["reg"].item() == pytest.approx(reg.item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx((bpr + reg).item(), rel=1e-5)


def test_gradients_reach_every_parameter():
    inputs = tiny_inputs()
    model = VBPR(inputs, Config())
    model.loss(*_batch(inputs))["loss"].backward()
    names = {name for name, _ in model.named_parameters()}
    assert names == {"user_embedding", "item_embedding", "content.weight", "content.bias"}
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.count_nonzero(parameter.grad) > 0, name


def test_features_are_read_through_their_buffers():
    model = VBPR(tiny_inputs(), Config(embedding_dim=4))
    with torch.no_grad(), mean_feature(model, "text"), mean_feature(model, "visual"):
        _, items = model.embeddings()
    content = items[:, 4:]
    assert torch.allclose(content, content[:1].expand_as(content))
    assert not torch.allclose(model.embeddings()[1][:, 4:], content)
    assert not {"text", "visual"} & set(model.state_dict())


def test_a_short_fit_trains_with_finite_losses():
    short_fit(VBPR, Config(), learns="content.weight")


@needs_cuda
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    inputs = tiny_inputs()
    cuda_matches_cpu(VBPR(inputs, Config()), inputs)
