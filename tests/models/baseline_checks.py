"""What the baseline model tests (VBPR, MMGCN, GRCN) share: small inputs with both modalities, a batch
of sampled negatives, a short fit through the engine, and a CUDA run against the CPU one."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from viral.models.base import ModelInputs, Recommender
from viral.train.config import TrainConfig
from viral.train.loop import build_model, fit

from ..train.conftest import random_data


def feature_inputs(n_users: int, n_items: int, text_dim: int, visual_dim: int, seed: int = 0) -> ModelInputs:
    """Random pairs over the first n_users - 1 users and n_items - 1 items (the last of each has none)."""
    rng = np.random.default_rng(seed)
    pairs = np.stack([rng.integers(0, n_users - 1, 5 * n_users), rng.integers(0, n_items - 1, 5 * n_users)], 1)
    features = {"text": rng.normal(size=(n_items, text_dim)).astype(np.float32),
                "visual": rng.normal(size=(n_items, visual_dim)).astype(np.float32)}
    return ModelInputs(n_users, n_items, np.unique(pairs, axis=0), features)


def batch(inputs: ModelInputs, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    pairs = torch.from_numpy(inputs.train_pairs)
    neg = torch.randint(0, inputs.n_items, (len(pairs),), generator=torch.Generator().manual_seed(seed))
    return pairs[:, 0], pairs[:, 1], neg


def double(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().double()


def interleaved_reference(nodes: torch.Tensor, id_embedding: torch.Tensor, n_users: int, users, pos, neg):
    """MMGCN's and GRCN's loss as both codes write it, float64: (user, pos) and (user, neg) rows
    interleaved, -log sigmoid of the score difference, and the mean of squared ID rows over them.
    Returns (bpr, id_reg, the interleaved user rows)."""
    user_rows = users.repeat_interleave(2)
    item_rows = torch.stack([pos + n_users, neg + n_users]).t().reshape(-1)
    score = (nodes[user_rows] * nodes[item_rows]).sum(1).view(-1, 2)
    bpr = -torch.log(torch.sigmoid(score[:, 0] - score[:, 1])).mean()
    ids = double(id_embedding)
    return bpr, (ids[user_rows] ** 2 + ids[item_rows] ** 2).mean(), user_rows


def short_fit(cls: type[Recommender], config, learns: str) -> tuple[Recommender, dict[str, torch.Tensor]]:
    """Two epochs on the engine's small random dataset with random features: the losses are finite and
    the parameter `learns` moved. Returns the model and a copy of its state before training."""
    data = random_data()
    rng = np.random.default_rng(1)
    n_items = data.inputs.n_items
    data.inputs.features.update(text=rng.normal(size=(n_items, 6)).astype(np.float32),
                                visual=rng.normal(size=(n_items, 12)).astype(np.float32))
    model = build_model(cls, data, config, seed=3)
    initial = {name: value.clone() for name, value in model.state_dict().items()}
    result = fit(model, data, TrainConfig(epochs=2, batch_size=64, device="cpu", checkpoint=False), seed=3,
                 progress=False)
    assert len(result.history) == 2
    assert all(np.isfinite(record[key]) for record in result.history for key in ("loss", "bpr", "reg"))
    assert not torch.equal(initial[learns], model.get_parameter(learns))
    return model, initial


def cuda_matches_cpu(model: Recommender, inputs: ModelInputs) -> None:
    """The loss on CUDA equals the CPU one; backward and the embeddings run on the device."""
    sample = batch(inputs)
    expected = model.loss(*sample)["loss"].item()
    model = model.to("cuda")
    out = model.loss(*(t.to("cuda") for t in sample))
    out["loss"].backward()
    assert out["loss"].item() == pytest.approx(expected, rel=1e-4)
    users, items = model.embeddings()
    assert users.is_cuda and items.is_cuda


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
