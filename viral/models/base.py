"""What every recommender in the registry implements, and the inputs the train stage hands it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


@dataclass
class ModelInputs:
    """Everything a model may read. Arrays are indexed by the prepared userID / itemID.

    train_pairs: (n, 2) int64 [userID, itemID] of the TRAIN split only.
    features: "text", "visual" -> float32 (n_items, d) frozen item features (absent for ID-only data).
    graphs: "ui" -> symmetric-normalised (n_users + n_items) square adjacency (users first),
            "ii" -> (n_items, n_items) item-item kNN graph, "uu" -> (n_users, n_users) user-user graph.
    """

    n_users: int
    n_items: int
    train_pairs: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)
    graphs: dict[str, sp.csr_matrix] = field(default_factory=dict)


class Recommender(nn.Module):
    """Base class: subclasses set `Config` (a dataclass) and `requires`, and implement loss/embeddings.

    Scores are always dot products of the two matrices `embeddings()` returns, so the engine can
    evaluate any model with one batched matrix product.
    """

    Config: ClassVar[type]
    requires: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, inputs: ModelInputs, config) -> None:
        super().__init__()
        missing = sorted(
            name for name in self.requires if name not in inputs.features and name not in inputs.graphs
        )
        if missing:
            raise ValueError(f"model {type(self).__name__} needs inputs {missing}, which this dataset lacks")
        self.n_users = inputs.n_users
        self.n_items = inputs.n_items
        self.config = config

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        """Hook called before every training epoch (e.g. to resample a graph)."""

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training losses for one batch; key "loss" is the total to minimise, others are logged."""
        raise NotImplementedError

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (n_users, d) and (n_items, d) embeddings; the engine calls it in eval mode under no_grad."""
        raise NotImplementedError


def sparse_tensor(matrix: sp.spmatrix) -> torch.Tensor:
    """A scipy sparse matrix as a float32 torch sparse COO tensor (coalesced)."""
    coo = matrix.tocoo()
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(indices, values, coo.shape).coalesce()
