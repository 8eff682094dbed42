"""MMGCN (Wei et al., ACM MM 2019): one graph convolution network per modality on the user-item graph,
sharing an ID embedding that enters every layer; the final embedding of a node is the mean of its
modality networks' outputs, scored by dot product. BPR loss plus L2 on the batch's ID embeddings and
the user preferences.

Per modality m and layer l (the paper's equations; x^0 = L2-normalised [user preference; item feature]):
    h     = leaky_relu(mean over neighbours of x W_l)                      aggregation (eq. 1)
    x_hat = leaky_relu(T_l x) + id                                         ID-aware transform (eq. 5)
    x     = leaky_relu(G_l [h || x_hat])   or   leaky_relu(G_l h + x_hat)  combination (eq. 6)
The visual feature is projected 4096 -> 256 first; text enters at its own width.

The ID embedding and the preferences are learnable here, as in the paper. MMRec's (and the authors')
code keeps them as plain tensors the optimiser never sees; `train_id_and_preference: false` reproduces
that (they stay at their random initial values).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from viral.config import bounded
from viral.models.base import (FEATURE_NAMES, ModelInputs, Recommender, mean_square, node_bpr, published, sparse_csr,
                               spmm)
from viral.models.layers import mean_adjacency
from viral.train.config import TrainingPoint


@dataclass(frozen=True)
class Config:
    embedding_dim: int = bounded(64, ge=1)
    n_layers: int = bounded(3, ge=1)  # MMRec hard-codes 3 (its yaml's n_layers is unused)
    visual_latent_dim: int = bounded(256, ge=1)  # the visual feature is projected to this before its GCN
    # Eq. 6 offers both; MMRec and the authors' code pass concate='False', a non-empty string, so concat runs.
    combine: Literal["concat", "add"] = "concat"
    # MMRec's grids: reg {0, 1e-5, ..., 0.1} x lr {1e-4, ..., 1e-2}, no best point stated. lr: MMRec's
    # default; reg: the authors' code default (in MMRec's grid).
    reg_weight: float = bounded(1e-5, ge=0)
    # Both codes regularise only the visual preference (over all users); "all": every modality's.
    reg_preferences: Literal["visual", "all"] = "visual"
    # false = MMRec's/the authors' code: ID embedding and preferences are plain tensors that never train.
    train_id_and_preference: bool = True
    train: TrainingPoint = published(lr=1e-3, batch_size=2048)


def _table(shape: tuple[int, int], learnable: bool) -> torch.Tensor:
    table = nn.init.xavier_normal_(torch.empty(shape))
    return nn.Parameter(table) if learnable else table


class MMGCNBranch(nn.Module):
    """One modality's MMGCN branch: user preference + (projected) item feature, `n_layers` layers of
    mean aggregation, ID-aware transform and combination. Output rows: users first, then items."""

    def __init__(self, n_users: int, feature_dim: int, latent_dim: int | None, config: Config) -> None:
        super().__init__()
        d = config.embedding_dim
        self.project = nn.Linear(feature_dim, latent_dim) if latent_dim else None
        width = latent_dim or feature_dim
        preference = _table((n_users, width), config.train_id_and_preference)
        if isinstance(preference, nn.Parameter):
            self.preference = preference
        else:  # a buffer: saved with the weights, never optimised (the original code's behaviour)
            self.register_buffer("preference", preference)
        widths = [width] + [d] * (config.n_layers - 1)
        self.concat = config.combine == "concat"
        self.aggregate = nn.ParameterList(
            nn.Parameter(nn.init.xavier_normal_(torch.empty(w, w))) for w in widths)  # W_l (eq. 1)
        self.transform = nn.ModuleList(nn.Linear(w, d) for w in widths)  # T_l (eq. 5)
        self.combine = nn.ModuleList(nn.Linear(w + d if self.concat else w, d) for w in widths)  # G_l (eq. 6)
        for linear in [*self.transform, *self.combine, *([self.project] if self.project else [])]:
            nn.init.xavier_normal_(linear.weight)

    def forward(self, features: torch.Tensor, id_embedding: torch.Tensor, adjacency: torch.Tensor,
                adjacency_t: torch.Tensor) -> torch.Tensor:
        items = self.project(features) if self.project is not None else features
        x = F.normalize(torch.cat([self.preference, items]), dim=1)
        for weight, transform, combine in zip(self.aggregate, self.transform, self.combine):
            h = F.leaky_relu(spmm(adjacency, x @ weight, adjacency_t))
            x_hat = F.leaky_relu(transform(x)) + id_embedding
            x = F.leaky_relu(combine(torch.cat([h, x_hat], dim=1)) if self.concat else combine(h) + x_hat)
        return x


class MMGCN(Recommender):
    Config = Config
    requires = frozenset({"text", "visual"})

    def __init__(self, inputs: ModelInputs, config: Config) -> None:
        super().__init__(inputs, config)
        self.register_features(inputs)
        adjacency = mean_adjacency(inputs.train_pairs, inputs.n_users, inputs.n_items)
        self.register_buffer("adjacency", sparse_csr(adjacency), persistent=False)
        self.register_buffer("adjacency_t", sparse_csr(adjacency.T), persistent=False)
        n_nodes = inputs.n_users + inputs.n_items
        id_embedding = _table((n_nodes, config.embedding_dim), config.train_id_and_preference)
        if isinstance(id_embedding, nn.Parameter):
            self.id_embedding = id_embedding
        else:
            self.register_buffer("id_embedding", id_embedding)
        latent = {"visual": config.visual_latent_dim, "text": None}
        self.gcns = nn.ModuleDict(
            {name: MMGCNBranch(inputs.n_users, getattr(self, name).shape[1], latent[name], config)
             for name in FEATURE_NAMES})

    def propagate(self) -> torch.Tensor:
        """Final node embeddings (users first): the mean of the modality networks' outputs."""
        outputs = [gcn(getattr(self, name), self.id_embedding, self.adjacency, self.adjacency_t)
                   for name, gcn in self.gcns.items()]
        return torch.stack(outputs).mean(0)

    def dense_blocks(self) -> list[nn.Module]:
        """Each branch's projection and per-layer transform and combination layers."""
        return [layer for gcn in self.gcns.values() for layer in (gcn.project, *gcn.transform, *gcn.combine)
                if layer is not None]

    def loss(self, users, pos, neg):
        bpr = node_bpr(self.propagate(), self.n_users, users, pos, neg)
        # = the codes' mean over the interleaved (user, item) rows of both pairs (each user appears twice).
        reg = mean_square(self.id_embedding, users, torch.cat([pos, neg]) + self.n_users)
        regularised = ["visual"] if self.config.reg_preferences == "visual" else list(self.gcns)
        reg = reg + sum(self.gcns[name].preference.pow(2).mean() for name in regularised)
        reg = self.config.reg_weight * reg
        return {"loss": bpr + reg, "bpr": bpr, "reg": reg}

    def embeddings(self):
        nodes = self.propagate()
        return nodes[: self.n_users], nodes[self.n_users :]

    def summary(self):
        return {"train_id_and_preference": self.config.train_id_and_preference, "combine": self.config.combine}
