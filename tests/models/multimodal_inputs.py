"""Inputs for the multimodal model tests: a small random dataset with random features and the graph
variants a model reads, a random batch, and the real Baby split with random features of the real widths
(tests cannot import conftest under --import-mode=importlib, so the helpers live here)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from viral.train.data import TrainData, add_graphs

from ..train.conftest import random_data

BABY = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "baby"
needs_baby = pytest.mark.skipif(not (BABY / "baby.inter").is_file(),
                                reason="real Baby data (../shared/data/baby) not present")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def multimodal_data(n_users: int, n_items: int, per_user: int, graphs=(), seed: int = 0) -> TrainData:
    """`random_data` (MMRec's split, the "ui" graph) with 12-d visual and 8-d text features and `graphs`."""
    data = random_data(n_users=n_users, n_items=n_items, per_user=per_user, seed=seed)
    rng = np.random.default_rng(seed)
    data.inputs.features = {"visual": rng.random((n_items, 12), dtype=np.float32),
                            "text": rng.standard_normal((n_items, 8), dtype=np.float32)}
    add_graphs(data, graphs)
    return data


def dense_normalised_adjacency(pairs: np.ndarray, n_users: int, n_items: int) -> torch.Tensor:
    """The bipartite graph of `pairs` written densely (float64), users first, entries 1/sqrt(d_u d_i)."""
    n = n_users + n_items
    a = torch.zeros(n, n, dtype=torch.float64)
    a[pairs[:, 0], n_users + pairs[:, 1]] = 1
    a[n_users + pairs[:, 1], pairs[:, 0]] = 1
    degree = a.sum(1)
    scale = torch.where(degree > 0, degree.rsqrt(), torch.zeros_like(degree))
    return scale[:, None] * a * scale[None, :]


def random_batch(data: TrainData, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every train pair as (users, positives) with a uniformly drawn negative each."""
    generator = torch.Generator().manual_seed(seed)
    pairs = torch.from_numpy(data.inputs.train_pairs)
    return pairs[:, 0], pairs[:, 1], torch.randint(0, data.inputs.n_items, (len(pairs),), generator=generator)


def baby_with_random_features(graphs) -> TrainData:
    """The real Baby split with random 4096-d visual and 384-d text features and `graphs` built from them."""
    from viral.train.data import load_mmrec_inputs

    data = load_mmrec_inputs(BABY)
    n_items = data.inputs.n_items
    rng = np.random.default_rng(0)
    data.inputs.features = {"visual": rng.random((n_items, 4096), dtype=np.float32),
                            "text": rng.standard_normal((n_items, 384), dtype=np.float32)}
    add_graphs(data, graphs)
    return data


def one_step(model, data: TrainData, batch_size: int = 2048) -> dict[str, torch.Tensor]:
    """The loss of the first `batch_size` train pairs (random negatives), after a backward pass."""
    pairs = torch.from_numpy(data.inputs.train_pairs[:batch_size])
    out = model.loss(pairs[:, 0], pairs[:, 1], torch.randint(0, data.inputs.n_items, (batch_size,)))
    out["loss"].backward()
    return out


def cuda_round_trip(model, data: TrainData) -> None:
    """On CUDA: the per-epoch hook, one training step and the evaluation embeddings, all on the device."""
    model.to("cuda")
    model.pre_epoch(0, np.random.default_rng(0))
    model.loss(*(t.to("cuda") for t in random_batch(data)))["loss"].backward()
    users, items = model.embeddings()
    assert users.is_cuda and items.is_cuda


def assert_runs_repeat(model_class, data: TrainData, config, seed: int = 11) -> None:
    """Two short fits from the same seed end with bit-identical weights (every random draw is seeded)."""
    from viral.train.config import TrainConfig
    from viral.train.loop import build_model, fit

    states = []
    for _ in range(2):
        model = build_model(model_class, data, config, seed=seed)
        fit(model, data, TrainConfig(epochs=2, device="cpu", checkpoint=False, lr=0.01), seed=seed, progress=False)
        states.append(model.state_dict())
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key
