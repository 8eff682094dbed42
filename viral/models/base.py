"""What every recommender in the registry implements, the inputs the train stage hands it, and the
loss and sparse-propagation helpers the models share."""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import ClassVar, Iterator

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from viral.train.config import TrainingPoint

FEATURE_NAMES = ("text", "visual")


def published(**values) -> TrainingPoint:
    """A model Config's `train` field: the training point its paper chose (MMRec's defaults elsewhere)."""
    return field(default_factory=lambda: TrainingPoint(**values))


@dataclass
class ModelInputs:
    """Everything a model may read. Arrays are indexed by the prepared userID / itemID.

    train_pairs: (n, 2) int64 [userID, itemID] of the TRAIN split only.
    features: "text", "visual" -> float32 (n_items, d) frozen item features (absent for ID-only data).
    graphs: the graph variants of the graphs stage a model names in `requires` (viral/graphs/variants.py):
            "ui" (symmetric-normalised (n_users + n_items) square adjacency, users first), item-item
            variants "ii_*" (n_items square), user-user "uu" and the co-interaction counts "uu_counts".
    """

    n_users: int
    n_items: int
    train_pairs: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)
    graphs: dict[str, sp.csr_matrix] = field(default_factory=dict)


class Recommender(nn.Module):
    """Base class: subclasses set `Config` (a dataclass with a `train: TrainingPoint` field, see
    `published`) and `requires`, and implement loss/embeddings.

    Scores are always dot products of the two matrices `embeddings()` returns, so the engine can
    evaluate any model with one batched matrix product. The engine moves the whole model to its
    device with `.to(device)`: keep graphs and features as (non-persistent) buffers so they move along.
    """

    Config: ClassVar[type]
    requires: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, inputs: ModelInputs, config) -> None:
        super().__init__()
        needed = self.inputs_needed(config)
        missing = sorted(name for name in needed if name not in inputs.features and name not in inputs.graphs)
        if missing:
            raise ValueError(f"model {type(self).__name__} needs inputs {missing}, which this dataset lacks")
        self.n_users = inputs.n_users
        self.n_items = inputs.n_items
        self.config = config

    @classmethod
    def inputs_needed(cls, config) -> frozenset[str]:
        """The features and graph variants to load for this configuration (default: `requires`)."""
        return cls.requires

    def register_features(self, inputs: ModelInputs, names=FEATURE_NAMES) -> None:
        """Each modality in `names` as a float32 buffer of the same name (`self.text`, `self.visual`): the
        engine's modality-contribution check replaces these buffers by their mean row at evaluation."""
        for name in names:
            feature = torch.as_tensor(inputs.features[name], dtype=torch.float32)
            if feature.ndim != 2 or len(feature) != inputs.n_items:
                raise ValueError(f"features[{name!r}]: expected ({inputs.n_items}, d), got {tuple(feature.shape)}")
            self.register_buffer(name, feature, persistent=False)

    def modalities(self) -> list[str]:
        """The modality features this model reads (registered as buffers by `register_features`)."""
        buffers = dict(self.named_buffers(recurse=False))
        return [name for name in FEATURE_NAMES if name in buffers]

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        """Hook called before every training epoch (e.g. to prune or resample a graph), with the run's RNG."""

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Training losses for one batch; key "loss" is the total to minimise, the other keys (one per
        term: "bpr", "reg", each auxiliary loss) are logged in the curves. `neg` is None for models
        whose training point sets `negatives: false` (in-batch negatives)."""
        raise NotImplementedError

    def dense_blocks(self) -> list[nn.Module]:
        """The dense sub-networks that `train.precision: bf16` runs under autocast and `train.compile`
        compiles (viral/train/precision.py); none by default, so those settings leave a model unchanged."""
        return []

    def user_modality_weights(self) -> dict[str, torch.Tensor]:
        """The learned per-user weight of each modality slot, name -> (n_users,), for models that learn
        them (VIRAL, DRAGON's attentive concatenation); empty otherwise."""
        return {}

    def summary(self) -> dict[str, str | int | float | bool]:
        """Design choices worth recording beside the metrics (e.g. a scalable-vs-faithful option)."""
        return {}

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (n_users, d) and (n_items, d) embeddings; the engine calls it in eval mode under no_grad."""
        raise NotImplementedError


@contextlib.contextmanager
def mean_feature(model: Recommender, name: str) -> Iterator[None]:
    """Within the block, modality `name` of `model` is its mean item feature for every item."""
    original = getattr(model, name)
    setattr(model, name, original.mean(0, keepdim=True).expand_as(original))
    try:
        yield
    finally:
        setattr(model, name, original)


def rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`table[index]` with a deterministic backward: advanced indexing accumulates gradients with
    index_put_, whose multi-threaded CPU kernel sums duplicate rows in a varying order (runs then differ
    in the last bits); the embedding kernel does not, so CPU runs stay bit-for-bit repeatable."""
    return torch.nn.functional.embedding(index, table)


class _UnitRows(torch.autograd.Function):
    """x / max(|x|, eps) along the last dim, with a backward of four passes over x instead of autograd's
    seven for F.normalize (a tenth of a VIRAL step on CPU went there)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        clamped = norm < eps
        inverse = norm.clamp_min_(eps).reciprocal_()
        y = x * inverse
        ctx.save_for_backward(y, inverse, clamped)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        y, inverse, clamped = ctx.saved_tensors
        # d(x/|x|) = (g - y (y.g)) / |x|; where the norm was clamped to eps, x/eps is linear: g / eps.
        dot = (grad * y).sum(-1, keepdim=True).masked_fill_(clamped, 0)
        return grad.addcmul(y, dot, value=-1).mul_(inverse), None


def unit_rows(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """F.normalize(x, dim=-1) (to rounding), faster in the backward pass."""
    return _UnitRows.apply(x, eps)


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
    return csr_tensor(torch.from_numpy(csr.indptr.astype(np.int64)), torch.from_numpy(csr.indices.astype(np.int64)),
                      torch.from_numpy(csr.data), csr.shape)


def csr_tensor(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A torch sparse CSR tensor from valid index arrays (sorted columns per row), unchecked."""
    with warnings.catch_warnings():  # torch warns that its CSR layout is "beta" on every construction
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


class _SparseMatmul(torch.autograd.Function):
    """A @ X for a constant sparse A whose gradient w.r.t. X is A^T @ G, with A^T given as CSR too:
    torch's own CSR backward transposes A at every call, which dominates a LightGCN epoch."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, a_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.a_t = a_t
        return csr_matmul(a, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, csr_matmul(ctx.a_t, grad)


def csr_matmul(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """a @ x for a sparse CSR `a`, outside autograd. On CPU, addmm with beta=0 into a fresh tensor gives
    the same bits without the zero-fill and copy that `@` adds: 1.6x faster on Baby's user-item graph."""
    if x.device.type != "cpu":
        return a @ x
    out = x.new_empty(a.shape[0], x.shape[1])
    return torch.addmm(out, a, x, beta=0, out=out)


def spmm(a: torch.Tensor, x: torch.Tensor, a_t: torch.Tensor | None = None) -> torch.Tensor:
    """A @ X for a constant sparse CSR `a` (see `sparse_csr`); `a_t` is A's transpose as CSR, None
    when A is symmetric (the normalised user-item adjacency is). Runs in A's precision (fp32): a
    reduced-precision X (viral.train.precision) is cast up, and autocast is off for the product."""
    with torch.autocast(x.device.type, enabled=False):
        return _SparseMatmul.apply(a, a if a_t is None else a_t, x.to(torch.promote_types(x.dtype, a.dtype)))


def half_squared_l2(*embeddings: torch.Tensor) -> torch.Tensor:
    """NGCF/LATTICE's embedding regulariser: sum of half the squared Frobenius norms of the batch
    embedding matrices, divided by the batch size (rows of the last one)."""
    return torch.stack([e.pow(2).sum() / 2 for e in embeddings]).sum() / embeddings[-1].shape[0]


def node_bpr(nodes: torch.Tensor, n_users: int, users: torch.Tensor, pos: torch.Tensor,
             neg: torch.Tensor) -> torch.Tensor:
    """`bpr_loss` of a batch scored on one node table with the users first, then the items."""
    u = rows(nodes, users)
    p, n = rows(nodes, torch.cat([pos, neg]) + n_users).chunk(2)  # one gather: one full-size gradient
    return bpr_loss((u * p).sum(-1), (u * n).sum(-1))


def mean_square(table: torch.Tensor, *indices: torch.Tensor) -> torch.Tensor:
    """Sum over `indices` of the mean squared entry of those rows of `table`: the L2 penalty MMGCN and
    GRCN put on the batch's embeddings."""
    return sum(rows(table, index).pow(2).mean() for index in indices)
