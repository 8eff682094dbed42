"""Config of the graphs stage (params.yaml `graphs:`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from viral.config import bounded


@dataclass(frozen=True)
class GraphsConfig:
    knn_k: int = bounded(10, ge=1)  # item-item neighbours per item (self included when ii_self_loop)
    ii_graph: Literal["viral_avgsim", "dragon_weighted"] = "viral_avgsim"
    ii_image_weight: float = bounded(0.1, ge=0, le=1)  # dragon_weighted: weight of the visual kNN graph (text gets the rest)
    ii_norm: Literal["sym", "row", "none"] = "sym"
    ii_self_loop: bool = True
    uu_k: int = bounded(10, ge=1)  # user-user neighbours per user
    uu_weight: Literal["softmax", "row_norm"] = "softmax"
    uu_pad: Literal["none", "random"] = "none"  # random: DRAGON's padding of short lists, seeded by `data_seed`
    chunk_rows: int = bounded(4096, ge=1)  # rows per block of similarities / co-interaction counts (bounds peak memory)
