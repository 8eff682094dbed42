"""MENTOR (Xu et al., AAAI 2025, "MENTOR: Multi-level Self-supervised Learning for Multimodal
Recommendation") on DRAGON's backbone, as the authors' code trains it (model-spec §4.2):

1. one GCN per modality m in {visual, text, id} on the user-item graph (DRAGON's encoder: items enter
   through MLP(D -> 256 -> 64) of their feature, for the ID modality of a learnable 64-d item table;
   users through a free preference table; rows L2-normalised, 2 hops summed with layer 0);
2. DRAGON's attentive concatenation: items [x_v || x_t], users [w_u0 x_v || w_u1 x_t]; and the
   single-modality tables [x_id || x_id], [x_v || x_v], [x_t || x_t] (users unweighted);
3. the items of every table through the frozen item-item graph (`ii_dragon`, one layer) plus the
   residual, z_i = i + A i. No user-user graph: the paper builds on the user-item and item-item graphs
   (the code samples DRAGON's user graph every epoch and never reads it);
4. score <z_u, z_i> of the fused tables; the ID table serves the alignment only.

Loss = log2-BPR + DRAGON's reg (batch users' v/t preferences, all modality weights)
  + align_weight x multilevel cross-modal alignment: over the 6 pairs of the {fused, id, v, t} tables,
    |var_a - var_b| + |mean_a - mean_b| (each table's statistics over all of its entries);
  + mask_weight_f x feature-perspective enhancement: 1 - cos(dropout(z), MLP(z)), users plus items;
  + mask_weight_g x graph-perspective enhancement: InfoNCE between two perturbed views n1, n2 of the
    fused tables, whose GCN hops each add sign(h) * normalize(U(0,1)) * eps (SimGCL's noise), users
    plus items.

Differences from the authors' code (README "Baselines"): the feature-masking term carries gradients as
the paper describes (the code computes both branches under `no_grad`, so it is a constant:
`feature_mask_grad: false`); the InfoNCE over all users and items is computed in row blocks (same value,
bounded memory) or over the batch's nodes (`nce_nodes: batch`); evaluation recomputes the embeddings in
eval mode; the unused user graph, modality-dropout edge lists and modules are not built.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from viral.config import bounded
from viral.models.base import ModelInputs, Recommender, bpr_loss, published, rows, sparse_csr, spmm
from viral.models.layers import ItemItemGraph, ModalityGCN, layer_sum, modality_weights, weighted_concat
from viral.models.losses import one_way_info_nce
from viral.train.config import TrainingPoint

# DRAGON's concatenation order: [visual || text].
MODALITIES = ("visual", "text")
VIEWS = ("n1", "n2")


@dataclass(frozen=True)
class Config:
    """Defaults are MENTOR.yaml (the authors' repository) and the constants its code hard-codes."""

    embedding_dim: int = bounded(64, ge=1)        # per modality; the fused tables are twice as wide
    feat_hidden_dim: int = bounded(256, ge=1)     # feature MLP D -> 256 -> embedding_dim
    n_ui_layers: int = bounded(2, ge=0)           # hops of each modality GCN (hard-coded 2)
    n_ii_layers: int = bounded(1, ge=0)           # item-item hops, z_i = i + A^L i (n_mm_layers)
    reg_weight: float = bounded(1e-3, ge=0)
    align_weight: float = bounded(0.1, ge=0)      # multilevel cross-modal alignment
    mask_weight_f: float = bounded(1.5, ge=0)     # feature masking: 1 - cos(dropout(z), MLP(z))
    mask_dropout: float = bounded(0.5, ge=0, lt=1)  # yaml `dropout`: the masking's dropout rate
    feature_mask_grad: bool = True                # code: false (the term is computed under no_grad)
    mask_weight_g: float = bounded(1e-3, ge=0)    # graph perturbation InfoNCE (grid 1e-4, 1e-3)
    nce_temperature: float = bounded(0.2, gt=0)   # yaml `temp` (grid 0.2, 0.4, 0.6)
    noise_eps: float = bounded(0.1, ge=0)         # perturbation size per hop (hard-coded 0.1)
    perturbed_encoders: Literal["separate", "shared"] = "separate"  # code: separate GCN copies per view
    nce_nodes: Literal["all", "batch"] = "all"    # all users and items (the code) | the batch's
    nce_chunk_rows: int = bounded(4096, ge=0)     # anchors per InfoNCE block; 0 = one dense n x n product
    train: TrainingPoint = published(lr=1e-4, batch_size=2048, valid_metric="recall@10")  # MENTOR.yaml


def perturbed_layer_sum(adj: torch.Tensor, x: torch.Tensor, n_layers: int, eps: float) -> torch.Tensor:
    """x + h_1 + ... + h_L where every hop is perturbed and the perturbed hop is propagated:
    h_l = A h_{l-1} + sign(A h_{l-1}) * normalize(U(0,1)) * eps, the uniform noise drawn from torch's
    generator (seeded by the engine, saved with its checkpoints) and L2-normalised per row."""
    total, h = x, x
    for _ in range(n_layers):
        h = spmm(adj, h)
        h = h + torch.sign(h) * F.normalize(torch.rand_like(h), dim=-1) * eps
        total = total + h
    return total


def distribution_gap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|var(a) - var(b)| + |mean(a) - mean(b)| over all entries of two tables (unbiased variance)."""
    return (a.var() - b.var()).abs() + (a.mean() - b.mean()).abs()


def feature_mask_loss(z: torch.Tensor, mlp: nn.Module, dropout: float) -> torch.Tensor:
    """1 - mean_rows cos(dropout(z), MLP(z)): a masked view of each row should agree with its projection."""
    return 1 - F.cosine_similarity(F.dropout(z, dropout, training=True), mlp(z)).mean()


class MENTOR(Recommender):
    Config = Config
    requires = frozenset({"text", "visual", "ui", "ii_dragon"})

    def __init__(self, inputs: ModelInputs, config: Config) -> None:
        super().__init__(inputs, config)
        self.register_features(inputs, MODALITIES)
        self.register_buffer("ui", sparse_csr(inputs.graphs["ui"]), persistent=False)
        self.item_graph = ItemItemGraph(inputs.graphs["ii_dragon"], config.n_ii_layers)
        dim = config.embedding_dim
        # The ID "modality": a learnable item table entering its GCN like a feature.
        self.id_features = nn.Parameter(torch.empty(inputs.n_items, dim))
        nn.init.xavier_normal_(self.id_features)
        self.gcns = nn.ModuleDict({name: self._encoder(name) for name in (*MODALITIES, "id")})
        self.user_weights = modality_weights(inputs.n_users, len(MODALITIES))
        self.mask_mlp = nn.Linear(2 * dim, 2 * dim) if config.mask_weight_f > 0 else None
        separate = config.mask_weight_g > 0 and config.perturbed_encoders == "separate"
        self.perturbed = nn.ModuleDict({
            f"{name}_{view}": self._encoder(name) for view in VIEWS for name in MODALITIES
        }) if separate else None

    def _encoder(self, name: str) -> ModalityGCN:
        return ModalityGCN(self.n_users, self.item_input(name).shape[1], self.config.feat_hidden_dim,
                           self.config.embedding_dim)

    def item_input(self, name: str) -> torch.Tensor:
        return self.id_features if name == "id" else getattr(self, name)

    def fuse(self, outputs: list[torch.Tensor], weighted: bool = True) -> torch.Tensor:
        """One (n_users + n_items, 2d) table from two GCN outputs: users [w_0 o_0 || w_1 o_1] (unweighted
        for the single-modality tables), items [o_0 || o_1] + A_ii^L [o_0 || o_1]."""
        users = weighted_concat([out[: self.n_users] for out in outputs], self.user_weights if weighted else None)
        items = weighted_concat([out[self.n_users :] for out in outputs])
        return torch.cat([users, self.item_graph(items)])

    def egos(self, names) -> dict[str, torch.Tensor]:
        return {name: self.gcns[name].ego(self.item_input(name)) for name in names}

    def perturbed_views(self, egos: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        """The two perturbed fused tables: each modality through its own perturbed GCN copy (the code), or
        through the main GCN's layer 0 (`shared`), with fresh noise at every hop."""
        c = self.config
        views = []
        for view in VIEWS:
            outputs = []
            for name in MODALITIES:
                ego = egos[name]
                if self.perturbed is not None:
                    ego = self.perturbed[f"{name}_{view}"].ego(getattr(self, name))
                outputs.append(perturbed_layer_sum(self.ui, ego, c.n_ui_layers, c.noise_eps))
            views.append(self.fuse(outputs))
        return views

    def graph_contrast(self, n1: torch.Tensor, n2: torch.Tensor, users: torch.Tensor,
                       items: torch.Tensor) -> torch.Tensor:
        """InfoNCE(n1 -> n2) over the users plus over the items: all of them, or the batch's."""
        c = self.config
        if c.nce_nodes == "all":
            user_rows, item_rows = slice(None, self.n_users), slice(self.n_users, None)
            pairs = [(n1[user_rows], n2[user_rows]), (n1[item_rows], n2[item_rows])]
        else:
            nodes = [users.unique(), items.unique() + self.n_users]
            pairs = [(rows(n1, index), rows(n2, index)) for index in nodes]
        return sum(one_way_info_nce(a, b, c.nce_temperature, c.nce_chunk_rows) for a, b in pairs)

    def dense_blocks(self) -> list[nn.Module]:
        """The modality (and ID) MLPs of every encoder, perturbed ones included."""
        encoders = [*self.gcns.values(), *(self.perturbed.values() if self.perturbed is not None else ())]
        return [encoder.mlp for encoder in encoders]

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.config
        egos = self.egos((*MODALITIES, "id"))
        outputs = {name: layer_sum(self.ui, ego, c.n_ui_layers) for name, ego in egos.items()}
        fused = self.fuse([outputs[name] for name in MODALITIES])
        z_u, z_i = fused[: self.n_users], fused[self.n_users :]
        items = torch.cat([pos, neg])
        u = rows(z_u, users)
        p, n = rows(z_i, items).chunk(2)
        out = {"bpr": bpr_loss((u * p).sum(-1), (u * n).sum(-1)) / math.log(2)}
        preferences = sum(rows(self.gcns[name].preference, users).pow(2).mean() for name in MODALITIES)
        out["reg"] = c.reg_weight * (preferences + self.user_weights.pow(2).mean())
        if c.align_weight > 0:
            tables = [fused, *(self.fuse([outputs[name]] * 2, weighted=False) for name in ("id", *MODALITIES))]
            out["align"] = c.align_weight * sum(distribution_gap(a, b) for a, b in itertools.combinations(tables, 2))
        if self.mask_mlp is not None:
            with torch.set_grad_enabled(c.feature_mask_grad and torch.is_grad_enabled()):
                masking = (feature_mask_loss(z_u, self.mask_mlp, c.mask_dropout)
                           + feature_mask_loss(z_i, self.mask_mlp, c.mask_dropout))
            out["mask_f"] = c.mask_weight_f * masking
        if c.mask_weight_g > 0:
            out["mask_g"] = c.mask_weight_g * self.graph_contrast(*self.perturbed_views(egos), users, items)
        out["loss"] = sum(out.values())
        return out

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        egos = self.egos(MODALITIES)
        fused = self.fuse([layer_sum(self.ui, egos[name], self.config.n_ui_layers) for name in MODALITIES])
        return fused[: self.n_users], fused[self.n_users :]

    def user_modality_weights(self) -> dict[str, torch.Tensor]:
        return {name: self.user_weights[:, k].detach() for k, name in enumerate(MODALITIES)}

    def summary(self) -> dict[str, str | int | float | bool]:
        c = self.config
        return {"feature_mask_grad": c.feature_mask_grad, "perturbed_encoders": c.perturbed_encoders,
                "nce_nodes": c.nce_nodes, "nce_chunk_rows": c.nce_chunk_rows}
