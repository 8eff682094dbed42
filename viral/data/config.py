"""Configs of the data stages: download, prepare, images."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from viral.config import ConfigError, bounded, matching


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and difficulty of the generated Amazon-format dataset (the seed is the top-level `data_seed`)."""

    n_users: int = bounded(1500, ge=5, why="items need 5 distinct users for 5-core")
    n_items: int = bounded(500, ge=10)
    # The fewest distinct items a user interacts with (>= 5 so every user survives 5-core); a long tail
    # adds on average half as many again, as in the real 5-core files.
    interactions_per_user: int = bounded(12, ge=5, why="every user must survive 5-core")
    image_size: int = bounded(96, ge=32, le=1024, why="pixels")
    # Share of interactions drawn uniformly at random instead of by preference (taste noise).
    noise: float = bounded(0.1, ge=0, lt=1)
    category: str = matching(r"[A-Za-z0-9_]+", "letters, digits or _ (it is part of file names)", "Synthetic")

    def __post_init__(self) -> None:
        if self.n_items < 2 * self.interactions_per_user:
            raise ConfigError(
                f"n_items: expected >= 2 * interactions_per_user = {2 * self.interactions_per_user}, got {self.n_items}"
            )


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
    # Per release, tried in order (SNAP first for 2014, UCSD as the fallback).
    mirrors: dict[str, list[str]] = matching(
        r"https?://[^/\s]+(/\S*)?", "an http:// or https:// URL",
        default_factory=lambda: {release: list(urls) for release, urls in DEFAULT_MIRRORS.items()})
    image_features: bool = False
    retries: int = bounded(5, ge=0)
    timeout_s: float = bounded(60.0, gt=0)
    backoff_s: float = bounded(1.0, ge=0)
    # Expected sha256 per file name (optional): a mismatch deletes the file and fails the stage.
    sha256: dict[str, str] = matching(r"[0-9a-fA-F]{64}", "a sha256 hex digest (64 hex digits)",
                                      default_factory=dict)
    # Completed and partial downloads, kept outside the DVC output so reruns resume instead of refetching.
    cache_dir: str = "data/downloads"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.mirrors) - set(DEFAULT_MIRRORS))
        if unknown:
            raise ConfigError(f"mirrors: unknown release {unknown[0]!r}; valid: {', '.join(DEFAULT_MIRRORS)}")
        empty = [release for release, urls in self.mirrors.items() if not urls]
        if empty:
            raise ConfigError(f"mirrors: {empty[0]}: expected at least one URL")


@dataclass(frozen=True)
class PrepareConfig:
    k_core: int = bounded(5, ge=3, why="the split needs 3 interactions per user")
    bad_lines: Literal["error", "skip"] = "error"
    mmrec_check: Literal["error", "warn"] = "error"


@dataclass(frozen=True)
class ImagesConfig:
    concurrency: int = bounded(8, ge=1)
    retries: int = bounded(3, ge=0)
    timeout_s: float = bounded(20.0, gt=0)
    backoff_s: float = bounded(0.5, ge=0)
    shard_items: int = bounded(2000, ge=1)
    # Completed shards, outside the DVC output: reruns (and interrupted runs) reuse them.
    cache_dir: str = "data/cache/images"
