"""SLMRec (Tao et al., IEEE TMM 2022): self-supervised learning for multimedia recommendation, in
MMRec's visual + text form.

Three LightGCNs (mean of layers 0..L) on the user-item graph share one user table: on the item ID
embedding, on the visual projection and on the text projection (Linear from the L2-normalised raw
features). Users and items each concatenate their three views and pass them through their own Linear
back to d. The main loss is an in-batch InfoNCE (user vs its positive item, cosine / temperature; the
other positives of the batch are the negatives), not BPR: the training point sets `negatives: false`.
The self-supervised term is FAC (fine and coarse alignment) on the batch's positive items: the ID view
and the visual view meet in a fine space (InfoNCE); the ID side is mapped further to a coarser, half-width
space where it meets the text view (InfoNCE). Both on raw dot products / ssl_temp, as the code.
Loss = InfoNCE + ssl_alpha x FAC; the L2 penalty is Adam's weight decay (1e-4).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from viral.config import bounded
from viral.models.base import ModelInputs, Recommender, published, rows, sparse_csr
from viral.models.layers import homogeneous
from viral.models.losses import one_way_info_nce
from viral.train.config import TrainingPoint

VIEWS = ("id", "visual", "text")  # the order of the concatenated views


@dataclass(frozen=True)
class Config:
    embedding_dim: int = bounded(64, ge=2)   # even: FAC's coarse space is embedding_dim // 2 wide
    n_layers: int = bounded(3, ge=0)
    temperature: float = bounded(0.2, gt=0)  # main in-batch InfoNCE (the code's `temp`)
    ssl_temp: float = bounded(0.2, gt=0)     # FAC InfoNCE; MMRec grid {0.1, 0.2, 0.5, 1}
    ssl_alpha: float = bounded(0.1, ge=0)    # weight of FAC; MMRec grid {0.01, 0.05, 0.1, 0.5, 1}
    # The authors' point (conf/SLMRec.properties), inside MMRec's grid: lr 0.01, weight decay 1e-4, batch
    # 2048, in-batch negatives.
    train: TrainingPoint = published(lr=1e-2, batch_size=2048, weight_decay=1e-4, negatives=False)


def _xavier_linear(in_dim: int, out_dim: int) -> nn.Linear:
    """nn.Linear with a Xavier-uniform weight (the code); the bias keeps PyTorch's default init."""
    layer = nn.Linear(in_dim, out_dim)
    nn.init.xavier_uniform_(layer.weight)
    return layer


class SLMRec(Recommender):
    Config = Config
    requires = frozenset({"text", "visual", "ui"})

    def __init__(self, inputs: ModelInputs, config: Config) -> None:
        super().__init__(inputs, config)
        self.register_features(inputs, ("visual", "text"))
        # The code projects the row-normalised features; normalised once here, still the modality buffers.
        self.visual = F.normalize(self.visual, dim=1)
        self.text = F.normalize(self.text, dim=1)
        d = config.embedding_dim
        self.user_embedding = nn.Parameter(torch.empty(inputs.n_users, d))
        self.item_embedding = nn.Parameter(torch.empty(inputs.n_items, d))
        nn.init.xavier_uniform_(self.user_embedding)
        nn.init.xavier_uniform_(self.item_embedding)
        self.visual_dense = _xavier_linear(self.visual.shape[1], d)
        self.text_dense = _xavier_linear(self.text.shape[1], d)
        self.user_out = _xavier_linear(len(VIEWS) * d, d)
        self.item_out = _xavier_linear(len(VIEWS) * d, d)
        # FAC heads: ID and visual views into the fine space "iv"; the ID side on through "iva" (the audio
        # step of the original, kept as a link of the chain) to the coarse space "ivat" of the text view.
        self.id_to_iv = _xavier_linear(d, d)
        self.visual_to_iv = _xavier_linear(d, d)
        self.iv_to_iva = _xavier_linear(d, d)
        self.iva_to_ivat = _xavier_linear(d, d // 2)
        self.text_to_ivat = _xavier_linear(d, d // 2)
        # The graph is an input rebuilt from the data, not a learned weight: a non-persistent buffer.
        self.register_buffer("ui", sparse_csr(inputs.graphs["ui"]), persistent=False)

    def views(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Users' and items' three LightGCN outputs side by side, (n, 3d) each in VIEWS order. Propagation
        is linear and per column, so the three graphs (each starting from the shared user table) run as
        one propagation of width 3d."""
        items = torch.cat([self.item_embedding, self.visual_dense(self.visual), self.text_dense(self.text)], 1)
        users = self.user_embedding.repeat(1, len(VIEWS))
        out = homogeneous(self.ui, None, torch.cat([users, items]), self.config.n_layers, "mean")
        return out[: self.n_users], out[self.n_users :]

    def fac(self, item_views: torch.Tensor) -> torch.Tensor:
        """FAC on the batch items' (b, 3d) views: fine ID-visual alignment plus coarse ID-text alignment."""
        id_view, visual_view, text_view = item_views.chunk(len(VIEWS), dim=1)
        tau = self.config.ssl_temp
        id_iv = self.id_to_iv(id_view)
        fine = one_way_info_nce(id_iv, self.visual_to_iv(visual_view), tau, normalize=False)
        coarse = one_way_info_nce(self.iva_to_ivat(self.iv_to_iva(id_iv)), self.text_to_ivat(text_view), tau,
                                  normalize=False)
        return fine + coarse

    def dense_blocks(self) -> list[nn.Module]:
        """The feature projections of every item (the FAC heads and output layers act on the batch)."""
        return [self.visual_dense, self.text_dense]

    def loss(self, users, pos, neg):
        user_views, item_views = self.views()
        u = self.user_out(rows(user_views, users))
        pos_views = rows(item_views, pos)
        p = self.item_out(pos_views)
        main = one_way_info_nce(u, p, self.config.temperature)
        fac = self.fac(pos_views)
        return {"loss": main + self.config.ssl_alpha * fac, "infonce": main, "fac": fac}

    def embeddings(self):
        user_views, item_views = self.views()
        return self.user_out(user_views), self.item_out(item_views)
