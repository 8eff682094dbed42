"""Config of the graphs stage (params.yaml `graphs:`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from viral.config import ConfigError


@dataclass(frozen=True)
class GraphsConfig:
    knn_k: int = 10  # item-item neighbours per item (self included when ii_self_loop)
    ii_graph: Literal["viral_avgsim", "dragon_weighted"] = "viral_avgsim"
    ii_image_weight: float = 0.1  # dragon_weighted: weight of the visual kNN graph (text gets the rest)
    ii_norm: Literal["sym", "row", "none"] = "sym"
    ii_self_loop: bool = True
    uu_k: int = 10  # user-user neighbours per user
    uu_weight: Literal["softmax", "row_norm"] = "softmax"
    uu_pad: Literal["none", "random"] = "none"  # random: DRAGON's padding of short lists, seeded by `data_seed`
    chunk_rows: int = 4096  # rows per block of similarities / co-interaction counts (bounds peak memory)

    def __post_init__(self) -> None:
        for name in ("knn_k", "uu_k", "chunk_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected an int >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.ii_image_weight <= 1.0:
            raise ConfigError(f"ii_image_weight: expected a float in [0, 1], got {self.ii_image_weight}")
