"""Config of the graphs stage (params.yaml `graphs:`); which variant each key shapes is noted."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from viral.config import bounded


@dataclass(frozen=True)
class GraphsConfig:
    knn_k: int = bounded(10, ge=1)  # item-item neighbours per item, every ii_* variant (self included)
    ii_norm: Literal["sym", "row", "none"] = "sym"  # ii_viral: D^-1/2 S D^-1/2 | D^-1 S | raw S
    ii_self_loop: bool = True  # ii_viral: the item is one of its own k neighbours
    dragon_image_weight: float = bounded(0.1, ge=0, le=1)  # ii_dragon: visual graph weight, text gets the rest
    uu_k: int = bounded(10, ge=1)  # uu: user-user neighbours per user
    uu_weight: Literal["softmax", "row_norm"] = "softmax"  # uu: softmax over kept counts (DRAGON) | count / sum
    uu_pad: Literal["none", "random"] = "none"  # uu: random = DRAGON's padding of short lists, seeded by data_seed
    uu_list_k: int = bounded(200, ge=1)  # uu_counts: co-users kept per user (DRAGON's offline script: 200)
    chunk_rows: int = bounded(4096, ge=1)  # rows per block of similarities / co-counts (bounds peak memory)
