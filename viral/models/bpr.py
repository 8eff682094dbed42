"""BPR matrix factorisation (Rendle et al. 2009) exactly as MMRec trains it: Xavier-normal ID
embeddings, BPR loss, `reg_weight` x EmbLoss on the batch's user, positive and negative embeddings."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from viral.config import bounded
from viral.models.base import ModelInputs, Recommender, bpr_loss, emb_loss, published, rows
from viral.train.config import TrainingPoint


@dataclass(frozen=True)
class Config:
    embedding_dim: int = bounded(64, ge=1)
    reg_weight: float = bounded(0.1, ge=0)  # chosen on Baby validation from MMRec's grid (benchmarks/mmrec_reference.py)
    train: TrainingPoint = published(lr=1e-3, batch_size=2048)  # MMRec's defaults, verified on Baby


class BPR(Recommender):
    Config = Config

    def __init__(self, inputs: ModelInputs, config: Config) -> None:
        super().__init__(inputs, config)
        self.user_embedding = nn.Parameter(torch.empty(inputs.n_users, config.embedding_dim))
        self.item_embedding = nn.Parameter(torch.empty(inputs.n_items, config.embedding_dim))
        nn.init.xavier_normal_(self.user_embedding)
        nn.init.xavier_normal_(self.item_embedding)

    def loss(self, users, pos, neg):
        u = rows(self.user_embedding, users)
        p, n = rows(self.item_embedding, torch.cat([pos, neg])).chunk(2)  # one gather: one full-size gradient
        bpr = bpr_loss((u * p).sum(-1), (u * n).sum(-1))
        reg = self.config.reg_weight * emb_loss(u, p, n)
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}

    def embeddings(self):
        return self.user_embedding, self.item_embedding
