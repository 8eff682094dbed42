"""VBPR (He & McAuley, AAAI 2016) as MMRec trains it: matrix factorisation whose item side carries a
content part. An item is [ID embedding (d) || Linear(concat(text, visual)) (d)], a user one free
2d-dimensional vector scored against both halves; BPR loss plus `reg_weight` x EmbLoss on the batch's
user, positive and negative embeddings. MMRec's "recommended version" (no bias terms, the projection
is a Linear with bias over both modalities) is the one the VIRAL paper's Table 1 reports."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from viral.config import bounded
from viral.models.base import ModelInputs, Recommender, bpr_loss, emb_loss, published, rows
from viral.train.config import TrainingPoint


@dataclass(frozen=True)
class Config:
    embedding_dim: int = bounded(64, ge=1)  # each item half (ID, content); users get 2 x this
    # MMRec grids reg over {2, 1, 0.1, ..., 1e-5} with the same EmbLoss as BPR and states no best point:
    # 0.1 is the value that grid gave BPR on Baby validation (benchmarks/mmrec_reference.py).
    reg_weight: float = bounded(0.1, ge=0)
    train: TrainingPoint = published(lr=1e-3, batch_size=2048)  # MMRec's defaults (its VBPR grid has no lr)


class VBPR(Recommender):
    Config = Config
    requires = frozenset({"text", "visual"})

    def __init__(self, inputs: ModelInputs, config: Config) -> None:
        super().__init__(inputs, config)
        self.register_features(inputs)
        d = config.embedding_dim
        self.user_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(inputs.n_users, 2 * d)))
        self.item_embedding = nn.Parameter(nn.init.xavier_uniform_(torch.empty(inputs.n_items, d)))
        self.content = nn.Linear(self.text.shape[1] + self.visual.shape[1], d)  # E [f_t || f_v] + b
        nn.init.xavier_normal_(self.content.weight)
        nn.init.zeros_(self.content.bias)

    def items(self, index: torch.Tensor | None = None) -> torch.Tensor:
        """[ID || content] embeddings of the items `index` (all items when None)."""
        if index is None:
            ids, text, visual = self.item_embedding, self.text, self.visual
        else:
            ids, text, visual = rows(self.item_embedding, index), rows(self.text, index), rows(self.visual, index)
        return torch.cat([ids, self.content(torch.cat([text, visual], dim=1))], dim=1)

    def dense_blocks(self) -> list[nn.Module]:
        """The content projection E of every item's features."""
        return [self.content]

    def loss(self, users, pos, neg):
        u = rows(self.user_embedding, users)
        p, n = self.items(torch.cat([pos, neg])).chunk(2)  # only the batch's items are projected
        bpr = bpr_loss((u * p).sum(-1), (u * n).sum(-1))
        reg = self.config.reg_weight * emb_loss(u, p, n)
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}

    def embeddings(self):
        return self.user_embedding, self.items()
