"""Configs of the data stages: download, prepare, images."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from viral.config import ConfigError


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and difficulty of the generated Amazon-format dataset (the seed is the top-level `data_seed`)."""

    n_users: int = 1500
    n_items: int = 500
    # The fewest distinct items a user interacts with (>= 5 so every user survives 5-core); a long tail
    # adds on average half as many again, as in the real 5-core files.
    interactions_per_user: int = 12
    image_size: int = 96
    # Share of interactions drawn uniformly at random instead of by preference (taste noise).
    noise: float = 0.1
    category: str = "Synthetic"

    def __post_init__(self) -> None:
        if self.n_users < 5:
            raise ConfigError(f"n_users: expected >= 5 (items need 5 distinct users for 5-core), got {self.n_users}")
        if self.interactions_per_user < 5:
            raise ConfigError(
                f"interactions_per_user: expected >= 5 (every user must survive 5-core), got {self.interactions_per_user}"
            )
        if self.n_items < 2 * self.interactions_per_user:
            raise ConfigError(
                f"n_items: expected >= 2 * interactions_per_user = {2 * self.interactions_per_user}, got {self.n_items}"
            )
        if not 32 <= self.image_size <= 1024:
            raise ConfigError(f"image_size: expected 32..1024 pixels, got {self.image_size}")
        if not 0.0 <= self.noise < 1.0:
            raise ConfigError(f"noise: expected a share in [0, 1), got {self.noise}")
        if not re.fullmatch(r"[A-Za-z0-9_]+", self.category):
            raise ConfigError(f"category: expected letters, digits or _ (it is part of file names), got {self.category!r}")


# Per Amazon release, the mirrors tried in order (docs/datasets.md cites them); each URL is the folder
# that the release's relative file paths start from.
DEFAULT_MIRRORS = {
    "amazon2014": [
        "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles",
        "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles",
        "http://jmcauley.ucsd.edu/data/amazon/productGraph/categoryFiles",
    ],
    "amazon2018": [
        "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2",
        "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2",
        "https://jmcauley.ucsd.edu/data/amazon_v2",
    ],
    "amazon2023": [
        "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023",
        "https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_2023",
    ],
}


@dataclass(frozen=True)
class DownloadConfig:
    mirrors: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_MIRRORS.items()})
    image_features: bool = False
    retries: int = 5
    timeout_s: float = 60.0
    backoff_s: float = 1.0
    # Expected sha256 per file name (optional): a mismatch deletes the file and fails the stage.
    sha256: dict[str, str] = field(default_factory=dict)
    # Completed and partial downloads, kept outside the DVC output so reruns resume instead of refetching.
    cache_dir: str = "data/downloads"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.mirrors) - set(DEFAULT_MIRRORS))
        if unknown:
            raise ConfigError(f"mirrors: unknown release {unknown[0]!r}; valid: {', '.join(DEFAULT_MIRRORS)}")


@dataclass(frozen=True)
class PrepareConfig:
    k_core: int = 5
    bad_lines: Literal["error", "skip"] = "error"
    mmrec_check: Literal["error", "warn"] = "error"

    def __post_init__(self) -> None:
        if self.k_core < 3:
            raise ConfigError(f"k_core: expected at least 3 (the split needs 3 interactions per user), got {self.k_core}")


@dataclass(frozen=True)
class ImagesConfig:
    concurrency: int = 8
    retries: int = 3
    timeout_s: float = 20.0
    backoff_s: float = 0.5
    shard_items: int = 2000
    # Completed shards, outside the DVC output: reruns (and interrupted runs) reuse them.
    cache_dir: str = "data/cache/images"
