"""COHESION (Xu et al., SIGIR 2025, "COHESION: Composite Graph Convolutional Network with Dual-Stage
Fusion for Multimodal Recommendation") as the authors' code trains it (model-spec §4.3):

1. early fusion: each modality's projected features (MLP D -> 256 -> 64; for the ID "modality", of the
   learnable 64-d item table itself) are fused with the item ID table element-wise,
   sqrt(|(id^2 + f^2) / 2| + 1e-8);
2. composite GCN per branch (id, visual, text): layer 0 = the L2-normalised rows of [user preference;
   fused items]; every LightGCN hop on the sym-normalised user-item graph (optionally FREEDOM's
   degree-sensitive pruning of it) is rescaled row-wise by its cosine similarity to layer 0, and the
   layers 0..L are summed; the ID branch's output is detached before fusion;
3. users [id || v || t] plus one hop of DRAGON's user-user graph (k = 40 resampled from the
   co-interaction lists every epoch, softmax weights) as a residual; items [id || v || t] plus one hop
   of the frozen item-item graph (`ii_dragon`) as a residual;
4. late fusion, "adaptive optimisation": the BPR scores are summed per 64-d branch block, each block
   weighted by 1 - softmax_m(pos_m - neg_m) (detached), so the branch that already separates the pair
   best gets the smallest weight;
5. loss = log2-BPR + DRAGON's reg (batch users' v/t preferences, plus a per-user modality weight
   table that enters only this regulariser, as in the code).
Evaluation scores are plain dot products of the returned 192-d embeddings (the code's
`full_sort_predict`: no adaptive weights at inference, which need a positive/negative pair).

Differences from the authors' code (README "Baselines"): evaluation recomputes the embeddings in eval
mode (the code reuses the last training forward's) and, with pruning, on the full graph as FREEDOM does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from viral.config import bounded
from viral.models.base import ModelInputs, Recommender, bpr_loss, published, rows, sparse_csr, spmm
from viral.models.layers import (ItemItemGraph, ModalityGCN, SampledUserGraph, degree_sensitive_pruning,
                                 modality_weights)
from viral.train.config import TrainingPoint

MODALITIES = ("visual", "text")
# The block order of the fused 192-d embeddings: [id || v || t].
BRANCHES = ("id", *MODALITIES)


@dataclass(frozen=True)
class Config:
    """The code's constants; the grid point is lr 1e-4, reg 1e-3, num_layer 2, dropout 0 (no published
    best point: DRAGON's and MENTOR's lr/reg, DRAGON's hop count; README "Baselines")."""

    embedding_dim: int = bounded(64, ge=1)        # per branch; the fused embedding is three times as wide
    feat_hidden_dim: int = bounded(256, ge=1)     # feature MLP D -> 256 -> embedding_dim
    n_ui_layers: int = bounded(2, ge=0)           # composite GCN hops (yaml num_layer, grid 1..4)
    n_ii_layers: int = bounded(1, ge=0)           # item-item hops, z_i = i + A^L i (n_mm_layers)
    user_graph_k: int = bounded(40, ge=1)         # user-graph slots per user (hard-coded 40)
    dropout: float = bounded(0.0, ge=0, lt=1)     # share of user-item edges pruned every epoch (FREEDOM's rule)
    reg_weight: float = bounded(1e-3, ge=0)       # grid 0.1 .. 1e-4
    detach_id: bool = True                        # the ID branch's output enters the fusion detached
    train: TrainingPoint = published(lr=1e-4, batch_size=2048, valid_metric="recall@10")  # grid lr 0.1 .. 1e-4


def early_fusion(ids: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """COHESION's element-wise fusion of a modality with the ID table: sqrt(|(id^2 + f^2) / 2| + 1e-8)."""
    return torch.sqrt(((ids * ids + features * features) / 2).abs() + 1e-8)


def cosine_rescaled_layer_sum(adj: torch.Tensor, x: torch.Tensor, n_layers: int) -> torch.Tensor:
    """x + h_1 + ... + h_L with h_l = cos(A h_{l-1}, x) * A h_{l-1}, row-wise: each hop is scaled by how
    much it still agrees with the node's own layer-0 embedding (the rescaled hop is propagated on)."""
    total, h = x, x
    for _ in range(n_layers):
        h = spmm(adj, h)
        h = F.cosine_similarity(h, x, dim=-1).unsqueeze(1) * h
        total = total + h
    return total


def adaptive_scores(u: torch.Tensor, p: torch.Tensor, n: torch.Tensor,
                    n_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and negative scores summed over the embedding's blocks, block m weighted by
    1 - softmax_m(pos_m - neg_m), a constant (detached) of the pair."""
    pos = (u * p).unflatten(1, (n_blocks, -1)).sum(-1)
    neg = (u * n).unflatten(1, (n_blocks, -1)).sum(-1)
    weights = 1 - (pos - neg).softmax(-1).detach()
    return (pos * weights).sum(-1), (neg * weights).sum(-1)


class COHESION(Recommender):
    Config = Config
    requires = frozenset({"text", "visual", "ui", "ii_dragon", "uu_counts"})

    def __init__(self, inputs: ModelInputs, config: Config) -> None:
        super().__init__(inputs, config)
        self.register_features(inputs, MODALITIES)
        self.register_buffer("ui", sparse_csr(inputs.graphs["ui"]), persistent=False)
        self.item_graph = ItemItemGraph(inputs.graphs["ii_dragon"], config.n_ii_layers)
        dim = config.embedding_dim
        self.id_features = nn.Parameter(torch.empty(inputs.n_items, dim))
        nn.init.xavier_normal_(self.id_features)
        self.gcns = nn.ModuleDict({
            name: ModalityGCN(inputs.n_users, self.item_input(name).shape[1], config.feat_hidden_dim, dim)
            for name in BRANCHES
        })
        # The code's per-user modality weights weight nothing; they enter the regulariser only.
        self.user_weights = modality_weights(inputs.n_users, len(MODALITIES))
        # The engine resamples and prunes in `pre_epoch` before any training step; this first draw (seeded
        # by the run's torch seed) only serves an evaluation or a loss before then.
        first_draw = np.random.default_rng(int(torch.randint(2**62, ())))
        self.user_graph = SampledUserGraph(inputs.graphs["uu_counts"], config.user_graph_k, first_draw)
        self.pairs = np.unique(inputs.train_pairs, axis=0)
        self.register_buffer("pruned", None, persistent=False)
        self.prune(first_draw)

    def item_input(self, name: str) -> torch.Tensor:
        return self.id_features if name == "id" else getattr(self, name)

    def prune(self, rng: np.random.Generator) -> None:
        """The user-item graph of the coming epoch: FREEDOM's degree-sensitive pruning, or the full graph."""
        if self.config.dropout == 0:
            self.pruned = self.ui
            return
        keep = int(len(self.pairs) * (1.0 - self.config.dropout))
        graph = degree_sensitive_pruning(self.pairs, self.n_users, self.n_items, keep, rng)
        self.pruned = sparse_csr(graph).to(self.ui.device)

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        self.user_graph.resample(rng)
        self.prune(rng)

    def branch(self, name: str, adjacency: torch.Tensor) -> torch.Tensor:
        """One branch's composite GCN output (users first), its items early-fused with the ID table."""
        gcn = self.gcns[name]
        items = early_fusion(self.id_features, gcn.project(self.item_input(name)))
        x = F.normalize(torch.cat([gcn.preference, items]), dim=1)
        out = cosine_rescaled_layer_sum(adjacency, x, self.config.n_ui_layers)
        return out.detach() if name == "id" and self.config.detach_id else out

    def propagate(self, adjacency: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_u, z_i): [id || v || t] with the user-user and item-item residuals."""
        outputs = [self.branch(name, adjacency) for name in BRANCHES]
        users = torch.cat([out[: self.n_users] for out in outputs], dim=1)
        items = torch.cat([out[self.n_users :] for out in outputs], dim=1)
        z_u = users + self.user_graph(users)
        z_i = self.item_graph(items)
        return z_u, z_i

    def dense_blocks(self) -> list[nn.Module]:
        """The modality (and ID) MLPs."""
        return [gcn.mlp for gcn in self.gcns.values()]

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        z_u, z_i = self.propagate(self.pruned)
        u = rows(z_u, users)
        p, n = rows(z_i, torch.cat([pos, neg])).chunk(2)
        bpr = bpr_loss(*adaptive_scores(u, p, n, len(BRANCHES))) / math.log(2)
        preferences = sum(rows(self.gcns[name].preference, users).pow(2).mean() for name in MODALITIES)
        reg = self.config.reg_weight * (preferences + self.user_weights.pow(2).mean())
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.propagate(self.ui)

    def summary(self) -> dict[str, str | int | float | bool]:
        return {"detach_id": self.config.detach_id, "dropout": self.config.dropout}
