"""FREEDOM (Zhou & Shen 2023, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for
Multimodal Recommendation") as MMRec trains it (model-spec §4.1):

- a FROZEN item-item graph (`ii_dragon`: 0.1 x visual + 0.9 x text top-10 kNN, 1/k rows) propagated
  over the item ID embedding: h = A_ii^L e_i (L = 1);
- a DENOISED user-item graph: every epoch, keep (1 - dropout) of the train edges, drawn without
  replacement with probability proportional to 1/sqrt(d_u d_i), re-normalised symmetrically; LightGCN
  (2 layers, mean of layers 0..2) on it during training, on the full graph at evaluation;
- item = GCN + h; score = dot product;
- loss = BPR + reg_weight x (BPR(u, W_t t) + BPR(u, W_v v)), the modality terms scoring the batch's
  items by linear projections (384 / 4096 -> 64) of their features.

Differences from MMRec's code (README "Baselines"): the features are frozen as the paper describes
(MMRec's code makes them trainable tables, so Adam fine-tunes them: `tune_features: true`); the
edge draw is one vectorised exponential-keys sample (exactly weighted sampling without replacement,
as torch.multinomial) from the run's RNG; degrees carry no 1e-7 epsilon (no kept node has degree 0);
the projections have no bias (u.b cancels in every BPR difference, so it never learns).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from viral.config import bounded
from viral.models.base import ModelInputs, Recommender, bpr_loss, published, rows, sparse_csr, spmm
from viral.models.layers import degree_sensitive_pruning
from viral.train.config import TrainingPoint

MODALITIES = ("text", "visual")


@dataclass(frozen=True)
class Config:
    """Defaults are MMRec's FREEDOM.yaml; dropout and reg_weight are grid values there (no published
    best point): dropout 0.8 (keep 20% of the edges), reg_weight 1e-4."""

    embedding_dim: int = bounded(64, ge=1)    # ID embeddings and the modality projections
    n_ui_layers: int = bounded(2, ge=0)       # LightGCN layers on the (pruned) user-item graph
    n_ii_layers: int = bounded(1, ge=0)       # item-item hops over the item ID embedding (n_mm_layers)
    dropout: float = bounded(0.8, ge=0, lt=1)  # share of the user-item edges pruned every epoch (grid 0.8, 0.9)
    reg_weight: float = bounded(1e-4, ge=0)   # weight of the modality BPR terms (grid 0, 1e-5, 1e-4, 1e-3)
    tune_features: bool = False               # MMRec's code: true (trainable feature tables)
    train: TrainingPoint = published(lr=1e-3, batch_size=2048, valid_metric="recall@20")  # MMRec defaults


class FREEDOM(Recommender):
    Config = Config
    requires = frozenset({"text", "visual", "ui", "ii_dragon"})

    def __init__(self, inputs: ModelInputs, config: Config) -> None:
        super().__init__(inputs, config)
        self.register_features(inputs, MODALITIES)
        dim = config.embedding_dim
        self.user_embedding = nn.Parameter(torch.empty(inputs.n_users, dim))
        self.item_embedding = nn.Parameter(torch.empty(inputs.n_items, dim))
        nn.init.xavier_uniform_(self.user_embedding)
        nn.init.xavier_uniform_(self.item_embedding)
        # MMRec's projections carry a bias, but u.b cancels in every BPR difference (its gradient is zero up
        # to rounding): without it the loss is the same function of the parameters that learn.
        self.projections = nn.ModuleDict({
            name: nn.Linear(getattr(self, name).shape[1], dim, bias=False) for name in MODALITIES
        })
        # With fine-tuning, feature + shift is the trainable table (the shift starts at zero, so Adam moves
        # it exactly as it moves MMRec's table); features are still read only through their buffers.
        self.feature_shift = nn.ParameterDict({
            name: nn.Parameter(torch.zeros_like(getattr(self, name))) for name in MODALITIES
        }) if config.tune_features else None
        self.pairs = np.unique(inputs.train_pairs, axis=0)
        self.n_kept = int(len(self.pairs) * (1.0 - config.dropout))
        self.register_buffer("ui", sparse_csr(inputs.graphs["ui"]), persistent=False)
        self.register_buffer("ii", sparse_csr(inputs.graphs["ii_dragon"]), persistent=False)
        self.register_buffer("ii_t", sparse_csr(inputs.graphs["ii_dragon"].T), persistent=False)
        # The engine prunes in `pre_epoch` before any training step; this first draw (seeded by the run's
        # torch seed) only serves a loss computed before then.
        self.register_buffer("pruned", None, persistent=False)
        self.prune(np.random.default_rng(int(torch.randint(2**62, ()))))

    def prune(self, rng: np.random.Generator) -> None:
        """Draw the training graph of the coming epoch (the full graph when nothing is dropped)."""
        if self.config.dropout == 0:
            self.pruned = self.ui
            return
        graph = degree_sensitive_pruning(self.pairs, self.n_users, self.n_items, self.n_kept, rng)
        self.pruned = sparse_csr(graph).to(self.ui.device)

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        self.prune(rng)

    def propagate(self, adjacency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(users, items): LightGCN mean over layers 0..L on `adjacency`, items plus h = A_ii^L e_i."""
        h = self.item_embedding
        for _ in range(self.config.n_ii_layers):
            h = spmm(self.ii, h, self.ii_t)
        layer = total = torch.cat([self.user_embedding, self.item_embedding])
        for _ in range(self.config.n_ui_layers):
            layer = spmm(adjacency, layer)
            total = total + layer
        total = total / (self.config.n_ui_layers + 1)
        return total[: self.n_users], total[self.n_users :] + h

    def projected(self, name: str, items: torch.Tensor) -> torch.Tensor:
        """W_m x_m of modality `name` for the distinct rows `items` (MMRec projects every item)."""
        features = rows(getattr(self, name), items)
        if self.feature_shift is not None:
            features = features + rows(self.feature_shift[name], items)
        return self.projections[name](features)

    def dense_blocks(self) -> list[nn.Module]:
        """The modality projections."""
        return list(self.projections.values())

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        user_emb, item_emb = self.propagate(self.pruned)
        u = rows(user_emb, users)
        items = torch.cat([pos, neg])
        p, n = rows(item_emb, items).chunk(2)
        out = {"bpr": bpr_loss((u * p).sum(-1), (u * n).sum(-1))}
        # Each distinct item's 4096-d feature row is gathered and projected once.
        distinct, index = items.unique(return_inverse=True)
        for name in MODALITIES:
            p_m, n_m = rows(self.projected(name, distinct), index).chunk(2)
            out[f"{name}_bpr"] = bpr_loss((u * p_m).sum(-1), (u * n_m).sum(-1))
        out["loss"] = out["bpr"] + self.config.reg_weight * (out["text_bpr"] + out["visual_bpr"])
        return out

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.propagate(self.ui)

    def summary(self) -> dict[str, str | int | float | bool]:
        return {"tune_features": self.config.tune_features}
