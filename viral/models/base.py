"""What every recommender in the registry implements, the inputs the train stage hands it, and the
loss and sparse-propagation helpers the models share."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
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
    evaluate any model with one batched matrix product. The engine moves the whole model to its
    device with `.to(device)`: keep graphs as (non-persistent) buffers so they move along.
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

    def summary(self) -> dict[str, str | int | float | bool]:
        """Design choices worth recording beside the metrics (e.g. a scalable-vs-faithful option)."""
        return {}

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (n_users, d) and (n_items, d) embeddings; the engine calls it in eval mode under no_grad."""
        raise NotImplementedError


def rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`table[index]` with a deterministic backward: advanced indexing accumulates gradients with
    index_put_, whose multi-threaded CPU kernel sums duplicate rows in a varying order (runs then differ
    in the last bits); the embedding kernel does not, so CPU runs stay bit-for-bit repeatable."""
    return torch.nn.functional.embedding(index, table)


def bpr_loss(pos_scores: torch.Tensor, neg_scores: torch.Tensor) -> torch.Tensor:
    """MMRec's BPRLoss: mean of -log sigmoid(pos - neg). logsigmoid is the stable form of MMRec's
    -log(1e-10 + sigmoid(.)); the two differ only where sigmoid(.) < 1e-8."""
    return -F.logsigmoid(pos_scores - neg_scores).mean()


def emb_loss(*embeddings: torch.Tensor) -> torch.Tensor:
    """MMRec's EmbLoss: the sum of the (unsquared) Frobenius norms of the batch embedding matrices,
    divided by the batch size (rows of the last one)."""
    return torch.stack([e.norm(p=2) for e in embeddings]).sum() / embeddings[-1].shape[0]


def sparse_tensor(matrix: sp.spmatrix) -> torch.Tensor:
    """A scipy sparse matrix as a float32 torch sparse COO tensor (coalesced)."""
    coo = matrix.tocoo()
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(indices, values, coo.shape).coalesce()


def sparse_csr(matrix: sp.spmatrix) -> torch.Tensor:
    """A scipy sparse matrix as a float32 torch sparse CSR tensor (the fast layout for A @ X)."""
    csr = sp.csr_matrix(matrix, dtype=np.float32)
    csr.sort_indices()
    with warnings.catch_warnings():  # torch warns that its CSR layout is "beta" on every construction
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(csr.indptr.astype(np.int64)),
            torch.from_numpy(csr.indices.astype(np.int64)),
            torch.from_numpy(csr.data),
            csr.shape,
            check_invariants=False,
        )


class _SparseMatmul(torch.autograd.Function):
    """A @ X for a constant sparse A whose gradient w.r.t. X is A^T @ G, with A^T given as CSR too:
    torch's own CSR backward transposes A at every call, which dominates a LightGCN epoch."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, a_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.a_t = a_t
        return a @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, ctx.a_t @ grad


def spmm(a: torch.Tensor, x: torch.Tensor, a_t: torch.Tensor | None = None) -> torch.Tensor:
    """A @ X for a constant sparse CSR `a` (see `sparse_csr`); `a_t` is A's transpose as CSR, None
    when A is symmetric (the normalised user-item adjacency is). Runs in A's precision (fp32): a
    reduced-precision X (viral.train.precision) is cast up, and autocast is off for the product."""
    with torch.autocast(x.device.type, enabled=False):
        return _SparseMatmul.apply(a, a if a_t is None else a_t, x.to(torch.promote_types(x.dtype, a.dtype)))
