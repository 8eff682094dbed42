"""BPR matrix factorisation (Rendle et al. 2009) with MMRec's L2 regulariser on the batch embeddings."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from viral.models.base import ModelInputs, Recommender


@dataclass(frozen=True)
class Config:
    embedding_dim: int = 64
    reg_weight: float = 0.01


class BPR(Recommender):
    Config = Config

    def __init__(self, inputs: ModelInputs, config: Config) -> None:
        super().__init__(inputs, config)
        self.user_embedding = nn.Parameter(torch.empty(inputs.n_users, config.embedding_dim))
        self.item_embedding = nn.Parameter(torch.empty(inputs.n_items, config.embedding_dim))
        nn.init.xavier_normal_(self.user_embedding)
        nn.init.xavier_normal_(self.item_embedding)

    def loss(self, users, pos, neg):
        u, p, n = self.user_embedding[users], self.item_embedding[pos], self.item_embedding[neg]
        bpr = -F.logsigmoid((u * p).sum(-1) - (u * n).sum(-1)).mean()
        reg = self.config.reg_weight * (u.norm(dim=1).pow(2) + p.norm(dim=1).pow(2) + n.norm(dim=1).pow(2)).mean() / 2
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}

    def embeddings(self):
        return self.user_embedding, self.item_embedding
