"""Configs of the data stages: download, prepare, images."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and difficulty of the generated Amazon-format dataset (the seed is the top-level `seed`)."""

    n_users: int = 1500
    n_items: int = 500
    interactions_per_user: int = 12
    image_size: int = 96
    category: str = "Synthetic"


@dataclass(frozen=True)
class DownloadConfig:
    mirrors: list[str] = field(
        default_factory=lambda: [
            "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles",
            "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles",
        ]
    )
    image_features: bool = False
    retries: int = 5
    timeout_s: float = 60.0
    backoff_s: float = 1.0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass(frozen=True)
class PrepareConfig:
    k_core: int = 5
    split: Literal["random", "mmrec_file"] = "random"
    mmrec_dir: str = ""
    bad_lines: Literal["error", "skip"] = "error"


@dataclass(frozen=True)
class ImagesConfig:
    concurrency: int = 8
    retries: int = 3
    timeout_s: float = 20.0
    backoff_s: float = 0.5
    shard_items: int = 2000
