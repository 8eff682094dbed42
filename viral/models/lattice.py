"""LATTICE (Zhang et al., ACM MM 2021): mining latent item-item structure for multimedia recommendation.

Each modality's item features are projected linearly (W_m x + b_m); the cosine kNN graph (k=10) of the
projections is the *learned* structure. The modalities are mixed with softmax(modal_weight) and the
mixture sym-normalised, D^-1/2 S D^-1/2; the item graph is then (1 - lambda) x learned + lambda x
original, where the original graph is the same mixture of the frozen per-modality kNN graphs on the raw
features (the graphs stage's `ii_lattice_visual` / `ii_lattice_text`). One propagation of the item ID
embedding over it gives h. The collaborative part is a LightGCN on the user-item graph (mean of layers
0..L); the final item embedding adds L2-normalise(h). Loss: BPR + reg_weight x half squared norms / B of
the batch's final embeddings.

Gradients: the kNN selection is a non-differentiable top-k; the kept edges' weights are the projections'
cosine similarities, so the projections and modal_weight learn through them. The learned graph is built
on the first training batch of every epoch (the authors' and MMRec's code) and reused, detached, by the
epoch's other batches (merged with the original graphs into one CSR matrix); `graph_update: batch`
rebuilds it, with gradients, on every batch. Evaluation always builds it from the current weights. The
selection is chunked (`chunk_rows` rows of similarities at a time) and the graph is kept as k neighbours
per item: nothing items x items is ever materialised.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial
from typing import Callable, Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from viral.config import bounded
from viral.models.base import ModelInputs, Recommender, bpr_loss, half_squared_l2, published, rows, sparse_csr, spmm
from viral.models.layers import homogeneous, knn_columns, neighbour_sum
from viral.train.config import TrainingPoint

MODALITIES = ("visual", "text")  # modal_weight[0] weighs the image graph, [1] the text graph (as the code)


@dataclass(frozen=True)
class Config:
    embedding_dim: int = bounded(64, ge=1)
    feat_embed_dim: int = bounded(64, ge=1)      # width of the projections the learned graph is built on
    knn_k: int = bounded(10, ge=1)               # neighbours per item in the learned graph
    lambda_coeff: float = bounded(0.9, ge=0, le=1)  # weight of the original graph (skip connection)
    n_item_layers: int = bounded(1, ge=0)        # propagations of the item ID embedding on the item graph
    n_ui_layers: int = bounded(2, ge=0)          # LightGCN layers (the code's weight_size [64, 64])
    reg_weight: float = bounded(1e-5, ge=0)      # the authors' default (regs[0]); MMRec grid {0, 1e-5, 1e-4, 1e-3}
    graph_update: Literal["epoch", "batch"] = "epoch"  # rebuild the learned graph per epoch (code) or per batch
    ui_norm: Literal["sym", "row_self_loop"] = "sym"   # LightGCN's D^-1/2 A D^-1/2 | the code's D^-1 (A + I)
    tune_features: bool = False                  # code: true (raw feature tables trained, from_pretrained(freeze=False))
    chunk_rows: int = bounded(1024, ge=1)        # rows of the items x items similarity per kNN tile
    # The authors' lr 5e-4 (in MMRec's grid) with MMRec's batch 2048 and LATTICE's lr decay 0.96^(epoch/50).
    train: TrainingPoint = published(lr=5e-4, batch_size=2048, lr_decay=0.96, lr_decay_every=50)


@dataclass
class ItemGraph:
    """The item graph of one build: the learned part as k weighted neighbours per item (both modalities'
    edges side by side, normalisation and (1 - lambda) folded into the weights), plus the weight of each
    modality's original graph (lambda x softmax(modal_weight))."""

    columns: torch.Tensor           # (n_items, 2k) neighbour ids
    weights: torch.Tensor           # (n_items, 2k) edge weights
    original: dict[str, torch.Tensor]  # modality -> scalar weight of its original graph


def random_walk_with_self_loops(adjacency: sp.spmatrix) -> sp.csr_matrix:
    """D^-1 (A + I) with A the binary pattern of `adjacency`: the user-item graph of LATTICE's code
    (NGCF's `norm_adj`), row-stochastic and not symmetric."""
    pattern = sp.csr_matrix(adjacency, dtype=np.float64, copy=True)
    pattern.data[:] = 1.0
    with_loops = pattern + sp.identity(pattern.shape[0], format="csr")
    degree = np.asarray(with_loops.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / degree) @ with_loops, dtype=np.float32)


def sym_normalised_weights(similarities: list[torch.Tensor], columns: torch.Tensor) -> torch.Tensor:
    """D^-1/2 S D^-1/2 of S = the sum of the given (n, k_m) kNN similarity blocks (already weighted),
    as edge weights aligned with `columns` (their concatenation). D = row sums of S; a row whose sum is
    not positive gets no edges (the code's pow(-0.5) would give inf or NaN there)."""
    values = torch.cat(similarities, dim=1)
    degree = values.sum(1)
    inv_sqrt = torch.where(degree > 0, degree.clamp_min(1e-12).rsqrt(), torch.zeros_like(degree))
    return inv_sqrt[:, None] * values * rows(inv_sqrt[:, None], columns).squeeze(-1)


class LATTICE(Recommender):
    Config = Config
    requires = frozenset({"text", "visual", "ui", "ii_lattice_visual", "ii_lattice_text"})

    def __init__(self, inputs: ModelInputs, config: Config) -> None:
        super().__init__(inputs, config)
        self.register_features(inputs, MODALITIES)
        self.user_embedding = nn.Parameter(torch.empty(inputs.n_users, config.embedding_dim))
        self.item_embedding = nn.Parameter(torch.empty(inputs.n_items, config.embedding_dim))
        nn.init.xavier_uniform_(self.user_embedding)
        nn.init.xavier_uniform_(self.item_embedding)
        # PyTorch's default Linear init, as the code.
        self.projections = nn.ModuleDict(
            {m: nn.Linear(inputs.features[m].shape[1], config.feat_embed_dim) for m in MODALITIES})
        self.modal_weight = nn.Parameter(torch.full((len(MODALITIES),), 0.5))
        # Tuning the raw features (the code) = learning a shift added to the frozen feature buffers: the
        # same gradients and Adam steps (no weight decay), while the features stay readable as buffers.
        self.feature_shift = nn.ParameterDict(
            {m: nn.Parameter(torch.zeros_like(getattr(self, m))) for m in MODALITIES} if config.tune_features else {})
        # Graphs are inputs rebuilt from the data, not learned weights: non-persistent buffers.
        if config.ui_norm == "sym":
            self.register_buffer("ui", sparse_csr(inputs.graphs["ui"]), persistent=False)
            self.register_buffer("ui_t", None, persistent=False)  # symmetric: spmm uses ui itself
        else:
            walk = random_walk_with_self_loops(inputs.graphs["ui"])
            self.register_buffer("ui", sparse_csr(walk), persistent=False)
            self.register_buffer("ui_t", sparse_csr(walk.T), persistent=False)
        for m in MODALITIES:
            graph = inputs.graphs[f"ii_lattice_{m}"]
            self.register_buffer(f"original_{m}", sparse_csr(graph), persistent=False)
            self.register_buffer(f"original_{m}_t", sparse_csr(graph.T), persistent=False)
        # The item graph built by this epoch's first batch, detached, as CSR (A, A^T): the other batches' graph
        self._epoch_graph: tuple[torch.Tensor, torch.Tensor] | None = None

    def features(self, modality: str) -> torch.Tensor:
        feature = getattr(self, modality)
        return feature + self.feature_shift[modality] if self.config.tune_features else feature

    def item_graph(self) -> ItemGraph:
        """Build the learned item graph from the current projections; differentiable in the projections,
        modal_weight (and the feature shift) through the kept edges' similarities."""
        config = self.config
        weights = self.modal_weight.softmax(0)
        columns, similarities = [], []
        for m, weight in zip(MODALITIES, weights):
            projected = F.normalize(self.projections[m](self.features(m)), dim=1)
            neighbours = knn_columns(projected, config.knn_k, config.chunk_rows)  # the selection: no gradient
            cosine = (rows(projected, neighbours) * projected.unsqueeze(1)).sum(-1)
            columns.append(neighbours)
            similarities.append(weight * cosine)
        columns = torch.cat(columns, dim=1)
        learned = sym_normalised_weights(similarities, columns)
        original = {m: config.lambda_coeff * weight for m, weight in zip(MODALITIES, weights)}
        return ItemGraph(columns, (1 - config.lambda_coeff) * learned, original)

    def propagate_items(self, graph: ItemGraph, x: torch.Tensor) -> torch.Tensor:
        """A x for the item graph A = (1 - lambda) learned + lambda sum_m w_m original_m."""
        out = neighbour_sum(x, graph.columns, graph.weights)
        for m, weight in graph.original.items():
            out = out + weight * spmm(getattr(self, f"original_{m}"), x, getattr(self, f"original_{m}_t"))
        return out

    def constant_item_graph(self, graph: ItemGraph) -> tuple[torch.Tensor, torch.Tensor]:
        """`graph` with its weights detached, as one CSR matrix A and its transpose: the epoch's other
        batches then propagate with one sparse product instead of gathering 2k neighbours per item."""
        n = self.n_items
        per_row = graph.columns.shape[1]
        rows_of = torch.arange(n, device=graph.columns.device)
        indices = [torch.stack([rows_of.repeat_interleave(per_row), graph.columns.reshape(-1)])]
        values = [graph.weights.detach().reshape(-1)]
        for m, weight in graph.original.items():
            original = getattr(self, f"original_{m}")
            indices.append(torch.stack([rows_of.repeat_interleave(original.crow_indices().diff()),
                                        original.col_indices()]))
            values.append(weight.detach() * original.values())
        index, value = torch.cat(indices, dim=1), torch.cat(values)
        with warnings.catch_warnings():  # torch calls its CSR layout "beta" on every construction
            warnings.simplefilter("ignore", UserWarning)
            return tuple(torch.sparse_coo_tensor(i, value, (n, n), check_invariants=False).coalesce().to_sparse_csr()
                         for i in (index, index.flip(0)))

    def forward_embeddings(self, propagate_items: Callable[[torch.Tensor], torch.Tensor]):
        """(users, items) final embeddings: LightGCN mean, items plus L2-normalised h, where h is the item
        ID embedding propagated `n_item_layers` times by `propagate_items` (x -> A x)."""
        ego = torch.cat([self.user_embedding, self.item_embedding])
        final = homogeneous(self.ui, self.ui_t, ego, self.config.n_ui_layers, "mean")
        h = self.item_embedding
        for _ in range(self.config.n_item_layers):
            h = propagate_items(h)
        return final[: self.n_users], final[self.n_users :] + F.normalize(h, dim=1)

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        self._epoch_graph = None  # the epoch's first batch rebuilds the learned graph

    def dense_blocks(self) -> list[nn.Module]:
        """The modality projections."""
        return list(self.projections.values())

    def loss(self, users, pos, neg):
        if self._epoch_graph is None or self.config.graph_update == "batch":
            graph = self.item_graph()
            if self.config.graph_update == "epoch":
                self._epoch_graph = self.constant_item_graph(graph)
            user_all, item_all = self.forward_embeddings(partial(self.propagate_items, graph))
        else:
            adjacency, transposed = self._epoch_graph
            user_all, item_all = self.forward_embeddings(lambda x: spmm(adjacency, x, transposed))
        u = rows(user_all, users)
        p, n = rows(item_all, torch.cat([pos, neg])).chunk(2)  # one gather: one full-size gradient
        bpr = bpr_loss((u * p).sum(-1), (u * n).sum(-1))
        reg = self.config.reg_weight * half_squared_l2(u, p, n)
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}

    def embeddings(self):
        return self.forward_embeddings(partial(self.propagate_items, self.item_graph()))

    def summary(self) -> dict[str, str | int | float | bool]:
        return {"graph_update": self.config.graph_update, "ui_norm": self.config.ui_norm,
                "tune_features": self.config.tune_features}
