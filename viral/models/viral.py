"""VIRAL: information-aware fusion (synergy, redundancy, unique visual) on a DRAGON-style graph backbone.

Data flow (the authors' code, compatible with the paper's prose; see README "The VIRAL model"):
raw item features t, v -> CSE over the item set -> s; TBR -> r; v' = v - proj_r(v) -> one user-item GCN
per slot (t, s, v') -> item [t||s||v'], user [w0 t||w1 s||w2 v'] -> item-item and user-user propagation
with residual -> dot-product score. Loss = BPR + reg + lambda (L_s + L_r).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from viral.config import bounded
from viral.models.attention import RedundancyEstimator, SynergyEstimator, neighbour_index, remove_component
from viral.models.base import ModelInputs, Recommender, bpr_loss, published, rows, sparse_csr
from viral.train.config import TrainingPoint
from viral.models.layers import HomoCombine, ModalityGCN, homogeneous
from viral.models.losses import info_nce

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
    homo_combine: HomoCombine = "last"  # z = x + A^L x, as DRAGON
    synergy: bool = True
    synergy_mode: Literal["faithful", "scalable"] = "faithful"  # all items (O(N^2)) | each item's ii neighbours
    redundancy: bool = True  # code (master): false
    normalize_unique: bool = False  # code (redu2): true, v' L2-normalised before its GCN
    # CSE/TBR width: unstated in the paper (model-spec A3: 64); code: 0 = text width 384
    fusion_width: int = bounded(64, ge=0, why="0 = text feature width")
    attention_heads: int = bounded(1, ge=1)
    ffn_mult: int = bounded(4, ge=1)
    nce_temperature: float = bounded(0.1, gt=0)  # unstated in the paper; code: 0.1
    fusion_weight: float = bounded(0.1, ge=0)  # lambda of eq. 17; code: 0.001
    reg_weight: float = bounded(0.01, ge=0)  # unstated in the paper; code: 0.01
    slot_order: Literal["t_s_v", "v_s_t"] = "t_s_v"  # code (master): v_s_t
    ii_graph: Literal["viral", "dragon"] = "viral"  # item-item graph: eq. 3's ii_viral, or DRAGON's ii_dragon
    train: TrainingPoint = published(lr=1e-3, batch_size=1024)  # paper; code: lr 1e-4, batch 2048


class VIRAL(Recommender):
    Config = Config
    requires = frozenset({"text", "visual", "ui", "ii_viral", "uu"})

    @classmethod
    def inputs_needed(cls, config: Config) -> frozenset[str]:
        return cls.requires - {"ii_viral"} | {f"ii_{config.ii_graph}"}

    def __init__(self, inputs: ModelInputs, config: Config) -> None:
        super().__init__(inputs, config)
        text = torch.as_tensor(inputs.features["text"], dtype=torch.float32)
        visual = torch.as_tensor(inputs.features["visual"], dtype=torch.float32)
        for name, feature in (("text", text), ("visual", visual)):
            if feature.ndim != 2 or len(feature) != inputs.n_items:
                raise ValueError(f"features[{name!r}]: expected ({inputs.n_items}, d), got {tuple(feature.shape)}")
        self.register_buffer("text", text, persistent=False)
        self.register_buffer("visual", visual, persistent=False)
        # Graphs are inputs rebuilt from the data, not learned weights: non-persistent buffers.
        self.register_buffer("ui", sparse_csr(inputs.graphs["ui"]), persistent=False)
        item_graph = inputs.graphs[f"ii_{config.ii_graph}"]
        for name, graph in (("ii", item_graph), ("uu", inputs.graphs["uu"])):
            self.register_buffer(name, sparse_csr(graph), persistent=False)
            self.register_buffer(f"{name}_t", sparse_csr(graph.T), persistent=False)
        viral = config.fusion == "viral"
        attends = viral and (config.synergy or config.redundancy)
        # The attention blocks need one width (`fusion_width`; 0 = the text width, as the authors' code):
        # a modality of another width (e.g. the 4096-d CNN feature) is projected to it first.
        width = config.fusion_width or text.shape[1]
        self.text_proj = nn.Linear(text.shape[1], width) if attends and text.shape[1] != width else None
        self.visual_proj = nn.Linear(visual.shape[1], width) if attends and visual.shape[1] != width else None
        heads, ffn_mult = config.attention_heads, config.ffn_mult
        self.synergy = SynergyEstimator(width, heads, ffn_mult) if viral and config.synergy else None
        scalable = self.synergy is not None and config.synergy_mode == "scalable"
        self.register_buffer("neighbours", neighbour_index(item_graph) if scalable else None, persistent=False)
        self.redundancy = RedundancyEstimator(width, heads, ffn_mult) if viral and config.redundancy else None
        in_dims = {"t": width if attends else text.shape[1], "s": width, "v": width if attends else visual.shape[1]}
        order = SLOT_ORDERS[config.slot_order] if viral else ("t", "v")
        self.slots = tuple(slot for slot in order if slot != "s" or self.synergy is not None)
        self.gcns = nn.ModuleDict(
            {slot: ModalityGCN(inputs.n_users, in_dims[slot], config.feat_hidden_dim, config.embedding_dim)
             for slot in self.slots}
        )
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

    def _slot_inputs(self) -> tuple[dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, ...]]]:
        """Item-level inputs of each slot's GCN, and the views the InfoNCE terms align."""
        text = self.text if self.text_proj is None else self.text_proj(self.text)
        visual = self.visual if self.visual_proj is None else self.visual_proj(self.visual)
        slots, views = {"t": text, "v": visual}, {}
        if self.synergy is not None:
            h_vt, h_tv = self.synergy(visual, text, self.neighbours)
            slots["s"] = (h_vt + h_tv) / 2
            views["synergy"] = (h_vt, h_tv)
        if self.redundancy is not None:
            h, h_v, h_t = self.redundancy(visual, text)
            unique = remove_component(visual, (h + h_v + h_t) / 3)
            slots["v"] = F.normalize(unique, dim=1) if self.config.normalize_unique else unique
            views["redundancy"] = (h, h_v, h_t)
        return slots, views

    def _forward(self) -> tuple[torch.Tensor, torch.Tensor, dict[str, tuple[torch.Tensor, ...]]]:
        """(z_u, z_i, InfoNCE views) on the full graph."""
        slot_inputs, views = self._slot_inputs()
        users, items = [], []
        for slot in self.slots:
            nodes = self.gcns[slot](slot_inputs[slot], self.ui, self.config.n_ui_layers)
            users.append(nodes[: self.n_users])
            items.append(nodes[self.n_users :])
        if self.config.fusion == "pooling":
            user_f, item_f = torch.stack(users).mean(0), torch.stack(items).mean(0)
        else:
            if self.user_weights is not None:
                users = [self.user_weights[:, k : k + 1] * part for k, part in enumerate(users)]
            user_f, item_f = torch.cat(users, dim=1), torch.cat(items, dim=1)
        cfg = self.config
        z_u = homogeneous(self.uu, self.uu_t, user_f, cfg.n_uu_layers, cfg.homo_combine)
        z_i = homogeneous(self.ii, self.ii_t, item_f, cfg.n_ii_layers, cfg.homo_combine)
        return z_u, z_i, views

    def user_modality_weights(self) -> dict[str, torch.Tensor]:
        if self.user_weights is None:
            return {}
        return {SLOT_NAMES[slot]: self.user_weights[:, k].detach() for k, slot in enumerate(self.slots)}

    def summary(self) -> dict[str, str | int | float | bool]:
        config = self.config
        return {"fusion": config.fusion, "synergy": self.synergy is not None,
                "synergy_mode": config.synergy_mode if self.synergy is not None else "off",
                "redundancy": self.redundancy is not None, "fusion_width": config.fusion_width}

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> dict[str, torch.Tensor]:
        z_u, z_i, views = self._forward()
        u = rows(z_u, users)
        p, n = rows(z_i, torch.cat([pos, neg])).chunk(2)
        bpr = bpr_loss((u * p).sum(-1), (u * n).sum(-1))
        reg = sum(rows(self.gcns[slot].preference, users).pow(2).mean() for slot in self.slots)
        if self.user_weights is not None:
            reg = reg + self.user_weights.pow(2).mean()
        reg = self.config.reg_weight * reg
        out = {"bpr": bpr, "reg": reg}
        total = bpr + reg
        if "synergy" in views:
            out["synergy_nce"] = self._nce(*views["synergy"], pos)
            total = total + self.config.fusion_weight * out["synergy_nce"]
        if "redundancy" in views:
            h, h_v, h_t = views["redundancy"]
            out["redundancy_nce"] = self._nce(h, h_v, pos) + self._nce(h, h_t, pos) + self._nce(h_v, h_t, pos)
            total = total + self.config.fusion_weight * out["redundancy_nce"]
        out["loss"] = total
        return out

    def _nce(self, a: torch.Tensor, b: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """InfoNCE over the batch's distinct positive items (all-item InfoNCE would be O(N^2) memory).

        On CUDA the duplicates are masked instead of removed: same value, no device sync per batch.
        """
        tau = self.config.nce_temperature
        if pos.is_cuda:
            return info_nce(rows(a, pos), rows(b, pos), tau, ids=pos)
        items = pos.unique()
        return info_nce(rows(a, items), rows(b, items), tau)

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        z_u, z_i, _ = self._forward()
        return z_u, z_i
