"""LightGCN (He et al. 2020) as MMRec trains it: Xavier-uniform ID embeddings propagated over the
symmetric-normalised user-item graph, final embedding = mean of layers 0..L, BPR loss plus
`reg_weight` x EmbLoss on the batch's EGO (layer-0) embeddings."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from viral.config import bounded
from viral.models.base import ModelInputs, Recommender, bpr_loss, emb_loss, published, rows, sparse_csr, spmm
from viral.train.config import TrainingPoint


@dataclass(frozen=True)
class Config:
    embedding_dim: int = bounded(64, ge=1)
    n_layers: int = bounded(3, ge=0)  # chosen on Baby validation from MMRec's grid (benchmarks/mmrec_reference.py)
    reg_weight: float = bounded(1e-2, ge=0)
    train: TrainingPoint = published(lr=1e-3, batch_size=2048)  # MMRec's defaults, verified on Baby


class LightGCN(Recommender):
    Config = Config
    requires = frozenset({"ui"})

    def __init__(self, inputs: ModelInputs, config: Config) -> None:
        super().__init__(inputs, config)
        self.user_embedding = nn.Parameter(torch.empty(inputs.n_users, config.embedding_dim))
        self.item_embedding = nn.Parameter(torch.empty(inputs.n_items, config.embedding_dim))
        nn.init.xavier_uniform_(self.user_embedding)
        nn.init.xavier_uniform_(self.item_embedding)
        # Not persistent: the graph is an input, rebuilt from the data, not a learned weight.
        self.register_buffer("adjacency", sparse_csr(inputs.graphs["ui"]), persistent=False)

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(ego, final) embeddings of all nodes, users first."""
        ego = torch.cat([self.user_embedding, self.item_embedding])
        layer, total = ego, ego
        for _ in range(self.config.n_layers):
            layer = spmm(self.adjacency, layer)
            total = total + layer
        return ego, total / (self.config.n_layers + 1)

    def loss(self, users, pos, neg):
        ego, final = self.propagate()
        # One gather per table for the whole batch: each gather's backward fills a full-size gradient.
        nodes = torch.cat([users, pos + self.n_users, neg + self.n_users])
        u, p, n = rows(final, nodes).chunk(3)
        bpr = bpr_loss((u * p).sum(-1), (u * n).sum(-1))
        reg = self.config.reg_weight * emb_loss(*rows(ego, nodes).chunk(3))
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}

    def embeddings(self):
        _, final = self.propagate()
        return final[: self.n_users], final[self.n_users :]
