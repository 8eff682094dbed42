"""VIRAL: information-aware fusion (synergy, redundancy, unique visual) on a DRAGON-style graph backbone.

Data flow (the authors' code, compatible with the paper's prose; see README "The VIRAL model"):
raw item features t, v -> CSE over the item set -> s; TBR -> r (in v's space); v' = v - proj_r(v) -> one
user-item GCN per slot (t, s, v'; t and v' enter at their feature width, like the pooling/concat rows)
-> item [t||s||v'], user [w0 t||w1 s||w2 v'] -> item-item and user-user propagation with residual ->
dot-product score. Loss = BPR + reg + lambda (L_s + L_r).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from viral.config import bounded
from viral.models.attention import RedundancyEstimator, SynergyEstimator, neighbour_pattern, remove_component
from viral.models.base import ModelInputs, Recommender, bpr_loss, published, rows, sparse_csr
from viral.models.layers import EdgeGraph, HomoCombine, SlotGCN, homogeneous
from viral.models.losses import info_nce
from viral.train.config import TrainingPoint

SLOT_ORDERS = {"t_s_v": ("t", "s", "v"), "v_s_t": ("v", "s", "t")}
SLOT_NAMES = {"t": "text", "s": "synergy", "v": "visual"}


@dataclass(frozen=True)
class Config:
    """Defaults are the paper's stated values; the authors' code value is noted where it differs."""

    fusion: Literal["viral", "pooling", "concat", "weighted_concat"] = "viral"  # filled from top-level `fusion`
    embedding_dim: int = bounded(64, ge=1)
    feat_hidden_dim: int = bounded(256, ge=1)  # DRAGON's feature MLP in -> 256 -> embedding_dim
    n_ui_layers: int = bounded(2, ge=0)
    n_ii_layers: int = bounded(2, ge=0)  # code: 1
    n_uu_layers: int = bounded(2, ge=0)  # code: 1
    ii_combine: HomoCombine = "last"  # z_i = x + A^L x, as DRAGON; code: x + A x (1 layer)
    uu_combine: HomoCombine = "last"  # z_u = x + W^L x, as DRAGON; code: mean, (x + W x) / 2 (1 layer)
    synergy: bool = True
    synergy_mode: Literal["faithful", "scalable"] = "faithful"  # all items (O(N^2)) | each item's ii neighbours
    redundancy: bool = True  # code (master): false
    normalize_unique: bool = False  # code (redu2): true, v' L2-normalised before its GCN
    # CSE/TBR attention width: unstated in the paper (model-spec A3: 64); code: 0 = the text width (384)
    fusion_width: int = bounded(64, ge=0, why="0 = text feature width")
    attention_heads: int = bounded(1, ge=1)
    ffn_mult: int = bounded(4, ge=1)
    nce_temperature: float = bounded(0.1, gt=0)  # unstated in the paper; code: 0.1
    fusion_weight: float = bounded(0.1, ge=0)  # lambda of eq. 17; code: 0.001
    reg_weight: float = bounded(0.01, ge=0)  # unstated in the paper; code: 0.01
    slot_order: Literal["t_s_v", "v_s_t"] = "t_s_v"  # code (master): v_s_t
    ii_graph: Literal["viral", "dragon"] = "viral"  # item-item graph: eq. 3's ii_viral, or DRAGON's ii_dragon
    train: TrainingPoint = published(lr=1e-3, batch_size=1024)  # paper; code: lr 1e-4, batch 2048


class InformationFusion(nn.Module):
    """The attention part of VIRAL's fusion, on the raw item features: project t and v to the attention
    width (where their width differs), CSE -> (h_vt, h_tv), TBR -> the pooled encodings of its three
    sequences, which `redundancy.project` (g) maps to (h, h_v, h_t) in v's feature space."""

    def __init__(self, text_dim: int, visual_dim: int, config: Config) -> None:
        super().__init__()
        width = config.fusion_width or text_dim
        heads, ffn_mult = config.attention_heads, config.ffn_mult
        self.text_in = nn.Linear(text_dim, width) if text_dim != width else None
        self.visual_in = nn.Linear(visual_dim, width) if visual_dim != width else None
        self.synergy = SynergyEstimator(width, heads, ffn_mult) if config.synergy else None
        self.redundancy = RedundancyEstimator(width, heads, ffn_mult, visual_dim) if config.redundancy else None
        self.width = width

    def forward(self, text: torch.Tensor, visual: torch.Tensor, pattern: EdgeGraph | None):
        """{"synergy": (h_vt, h_tv), "redundancy": pooled [v,t], [v,MASK_t], [MASK_v,t]}, present when on."""
        text = text if self.text_in is None else self.text_in(text)
        visual = visual if self.visual_in is None else self.visual_in(visual)
        views = {}
        if self.synergy is not None:
            views["synergy"] = self.synergy(visual, text, pattern)
        if self.redundancy is not None:
            views["redundancy"] = self.redundancy(visual, text)
        return views


class VIRAL(Recommender):
    Config = Config
    requires = frozenset({"text", "visual", "ui", "ii_viral", "uu"})

    @classmethod
    def inputs_needed(cls, config: Config) -> frozenset[str]:
        return cls.requires - {"ii_viral"} | {f"ii_{config.ii_graph}"}

    def __init__(self, inputs: ModelInputs, config: Config) -> None:
        super().__init__(inputs, config)
        self.register_features(inputs)
        text, visual = self.text, self.visual
        # Graphs are inputs rebuilt from the data, not learned weights: non-persistent buffers.
        self.register_buffer("ui", sparse_csr(inputs.graphs["ui"]), persistent=False)
        item_graph = inputs.graphs[f"ii_{config.ii_graph}"]
        for name, graph in (("ii", item_graph), ("uu", inputs.graphs["uu"])):
            self.register_buffer(name, sparse_csr(graph), persistent=False)
            self.register_buffer(f"{name}_t", sparse_csr(graph.T), persistent=False)
        viral = config.fusion == "viral"
        self.fusion = (InformationFusion(text.shape[1], visual.shape[1], config)
                       if viral and (config.synergy or config.redundancy) else None)
        synergy = self.fusion is not None and self.fusion.synergy is not None
        scalable = synergy and config.synergy_mode == "scalable"
        self.pattern = neighbour_pattern(item_graph) if scalable else None
        order = SLOT_ORDERS[config.slot_order] if viral else ("t", "v")
        self.slots = tuple(slot for slot in order if slot != "s" or synergy)
        # Every slot enters its GCN at its own width: t and v' at the feature width (as the non-VIRAL
        # fusions' t and v), s at the attention width.
        widths = {"t": text.shape[1], "v": visual.shape[1], **({"s": self.fusion.width} if synergy else {})}
        self.gcn = SlotGCN(inputs.n_users, [widths[slot] for slot in self.slots], config.feat_hidden_dim,
                           config.embedding_dim)
        self.user_weights = None
        if config.fusion in ("viral", "weighted_concat"):
            # Per-user modality weights, softmaxed once at init and then trained freely (DRAGON semantics).
            weights = torch.empty(inputs.n_users, len(self.slots))
            nn.init.xavier_normal_(weights)
            self.user_weights = nn.Parameter(weights.softmax(dim=1))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def dense_blocks(self) -> list[nn.Module]:
        """The dense sub-networks, which `viral.train.precision` may run in bf16 and compile; the sparse
        propagation, the losses and the scoring around them stay in fp32."""
        return [block for block in (self.fusion, self.gcn.mlps) if block is not None]

    def _slot_inputs(self) -> tuple[dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, ...]]]:
        """Item-level inputs of each slot's GCN, and the views the InfoNCE terms align."""
        views = {} if self.fusion is None else self.fusion(self.text, self.visual, self.pattern)
        slots = {"t": self.text, "v": self.visual}
        if "synergy" in views:
            h_vt, h_tv = views["synergy"]
            slots["s"] = (h_vt + h_tv) / 2
        if "redundancy" in views:
            r = self.fusion.redundancy.project(sum(views["redundancy"]) / 3)  # (h + h_v + h_t) / 3: g is affine
            unique = remove_component(self.visual, r)
            slots["v"] = F.normalize(unique, dim=1) if self.config.normalize_unique else unique
        return slots, views

    def _forward(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, tuple[torch.Tensor, ...]]]:
        """(z_u, z_i, InfoNCE views) on the full graph."""
        slot_inputs, views = self._slot_inputs()
        cfg = self.config
        nodes = self.gcn([slot_inputs[slot] for slot in self.slots], self.ui, cfg.n_ui_layers)
        users, items = nodes.split([self.n_users, self.n_items])  # split's backward: no zero-filled copies
        by_slot = (len(self.slots), cfg.embedding_dim)
        if cfg.fusion == "pooling":
            users, items = users.view(-1, *by_slot).mean(1), items.view(-1, *by_slot).mean(1)
        elif self.user_weights is not None:
            users = (users.view(-1, *by_slot) * self.user_weights[:, :, None]).view(len(users), -1)
        z_u = homogeneous(self.uu, self.uu_t, users, cfg.n_uu_layers, cfg.uu_combine)
        z_i = homogeneous(self.ii, self.ii_t, items, cfg.n_ii_layers, cfg.ii_combine)
        return z_u, z_i, views

    def user_modality_weights(self) -> dict[str, torch.Tensor]:
        if self.user_weights is None:
            return {}
        return {SLOT_NAMES[slot]: self.user_weights[:, k].detach() for k, slot in enumerate(self.slots)}

    def summary(self) -> dict[str, str | int | float | bool]:
        config, synergy = self.config, "s" in self.slots
        return {"fusion": config.fusion, "synergy": synergy,
                "synergy_mode": config.synergy_mode if synergy else "off",
                "redundancy": self.fusion is not None and self.fusion.redundancy is not None,
                "fusion_width": config.fusion_width}

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        z_u, z_i, views = self._forward()
        u = rows(z_u, users)
        p, n = rows(z_i, torch.cat([pos, neg])).chunk(2)
        bpr = bpr_loss((u * p).sum(-1), (u * n).sum(-1))
        # DRAGON's sum over slots of mean(preference_slot[users]^2).
        reg = rows(self.gcn.preference, users).view(len(users), len(self.slots), -1).pow(2).mean((0, 2)).sum()
        if self.user_weights is not None:
            reg = reg + self.user_weights.pow(2).mean()
        reg = self.config.reg_weight * reg
        out = {"bpr": bpr, "reg": reg}
        total = bpr + reg
        # InfoNCE over the batch's distinct positive items (all-item InfoNCE would be O(N^2) memory). On
        # CUDA the duplicates are masked instead of removed: same value, no device sync per batch.
        items, ids = (pos, pos) if pos.is_cuda else (pos.unique(), None)
        tau = self.config.nce_temperature
        if "synergy" in views:
            h_vt, h_tv = (rows(view, items) for view in views["synergy"])
            out["synergy_nce"] = info_nce(h_vt, h_tv, tau, ids=ids)
            total = total + self.config.fusion_weight * out["synergy_nce"]
        if "redundancy" in views:
            h, h_v, h_t = (self.fusion.redundancy.project(rows(pooled, items)) for pooled in views["redundancy"])
            out["redundancy_nce"] = sum(info_nce(a, b, tau, ids=ids) for a, b in ((h, h_v), (h, h_t), (h_v, h_t)))
            total = total + self.config.fusion_weight * out["redundancy_nce"]
        out["loss"] = total
        return out

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        z_u, z_i, _ = self._forward()
        return z_u, z_i
