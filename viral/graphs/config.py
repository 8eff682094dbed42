"""Config of the graphs stage."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class GraphsConfig:
    knn_k: int = 10
    ii_graph: Literal["viral_avgsim", "dragon_weighted"] = "viral_avgsim"
    ii_image_weight: float = 0.1
    ii_norm: Literal["sym", "row", "none"] = "sym"
    ii_self_loop: bool = True
    uu_k: int = 10
    uu_weight: Literal["softmax", "row_norm"] = "softmax"
    uu_pad: Literal["none", "random"] = "none"
    chunk_rows: int = 2048
