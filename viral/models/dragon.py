"""DRAGON (Zhou et al. 2023, "Enhancing Dyadic Relations with Homogeneous Graphs for Multimodal
Recommendation") as MMRec trains it (model-spec §3):

1. one GCN per modality on the user-item graph: items enter through MLP(D -> 256 -> 64, leaky ReLU)
   of their frozen feature, users through a free preference table; rows L2-normalised, 2 hops of the
   sym-normalised bipartite graph, summed over layers 0..2;
2. attentive concatenation: item [x_v || x_t], user [w_u0 x_v || w_u1 x_t] with per-user weights
   softmaxed once at init, then free and L2-regularised;
3. item-item graph (frozen `ii_dragon`: 0.1 x visual + 0.9 x text top-10 kNN, 1/k rows), one layer,
   plus the residual: z_i = i + A i;
4. user-user graph, resampled every epoch from the co-interaction lists (`uu_counts`: k=40 slots,
   short lists padded by re-picking, softmax of the counts), one layer plus the residual;
5. score <z_u, z_i>; loss = BPR with log base 2 + reg_weight (mean pref_v[u]^2 + mean pref_t[u]^2
   + mean w^2).

Differences from MMRec's code (README "Baselines"): evaluation recomputes the embeddings in eval mode
instead of reusing the last training forward's; the unused modality-dropout edge lists and modules are
not built; log2-BPR is computed as the stable -logsigmoid / ln 2.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from viral.config import bounded
from viral.models.base import ModelInputs, Recommender, bpr_loss, published, rows, sparse_csr
from viral.models.layers import ItemItemGraph, ModalityGCN, SampledUserGraph, modality_weights, weighted_concat
from viral.train.config import TrainingPoint

# DRAGON's concatenation order: [visual || text].
MODALITIES = ("visual", "text")


@dataclass(frozen=True)
class Config:
    """Defaults are MMRec's DRAGON.yaml and the constants its code hard-codes."""

    embedding_dim: int = bounded(64, ge=1)      # per modality; the fused embedding is twice as wide
    feat_hidden_dim: int = bounded(256, ge=1)   # feature MLP D -> 256 -> embedding_dim
    n_ui_layers: int = bounded(2, ge=0)         # hops of each modality GCN (hard-coded 2)
    n_ii_layers: int = bounded(1, ge=0)         # item-item hops, z_i = i + A^L i (n_mm_layers)
    user_graph_k: int = bounded(40, ge=1)       # user-graph slots per user (hard-coded 40)
    reg_weight: float = bounded(1e-3, ge=0)     # README's best on Baby (and Sports)
    train: TrainingPoint = published(lr=1e-4, batch_size=2048, valid_metric="recall@20")  # README best, Baby


class DRAGON(Recommender):
    Config = Config
    requires = frozenset({"text", "visual", "ui", "ii_dragon", "uu_counts"})

    def __init__(self, inputs: ModelInputs, config: Config) -> None:
        super().__init__(inputs, config)
        self.register_features(inputs, MODALITIES)
        # Graphs are inputs rebuilt from the data, not learned weights: non-persistent buffers.
        self.register_buffer("ui", sparse_csr(inputs.graphs["ui"]), persistent=False)
        self.item_graph = ItemItemGraph(inputs.graphs["ii_dragon"], config.n_ii_layers)
        self.gcns = nn.ModuleDict({
            name: ModalityGCN(inputs.n_users, getattr(self, name).shape[1], config.feat_hidden_dim,
                              config.embedding_dim)
            for name in MODALITIES
        })
        self.user_weights = modality_weights(inputs.n_users, len(MODALITIES))
        # The engine resamples in `pre_epoch` before any training step; this first draw (seeded by the
        # run's torch seed) only serves an evaluation before training.
        first_draw = np.random.default_rng(int(torch.randint(2**62, ())))
        self.user_graph = SampledUserGraph(inputs.graphs["uu_counts"], config.user_graph_k, first_draw)

    def pre_epoch(self, epoch: int, rng: np.random.Generator) -> None:
        self.user_graph.resample(rng)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_u, z_i): final user and item embeddings on the full graphs."""
        outputs = [self.gcns[name](getattr(self, name), self.ui, self.config.n_ui_layers) for name in MODALITIES]
        users = weighted_concat([out[: self.n_users] for out in outputs], self.user_weights)
        items = weighted_concat([out[self.n_users :] for out in outputs])
        z_u = users + self.user_graph(users)
        z_i = self.item_graph(items)
        return z_u, z_i

    def dense_blocks(self) -> list[nn.Module]:
        """The modality MLPs (all items through 4096/384 -> 256 -> 64: most of a batch's FLOPs)."""
        return [gcn.mlp for gcn in self.gcns.values()]

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        z_u, z_i = self.propagate()
        u = rows(z_u, users)
        p, n = rows(z_i, torch.cat([pos, neg])).chunk(2)
        # -mean(log2 sigmoid(.)), in the stable logsigmoid form
        bpr = bpr_loss((u * p).sum(-1), (u * n).sum(-1)) / math.log(2)
        preferences = sum(rows(self.gcns[name].preference, users).pow(2).mean() for name in MODALITIES)
        reg = self.config.reg_weight * (preferences + self.user_weights.pow(2).mean())
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.propagate()

    def user_modality_weights(self) -> dict[str, torch.Tensor]:
        return {name: self.user_weights[:, k].detach() for k, name in enumerate(MODALITIES)}
