"""The dataset registry: every name in `params.yaml`'s `datasets:` maps to a source and its settings.

Sources (one typed config each, built and checked like every other params section):
- `synthetic`: the generated Amazon-2014-format catalogue (viral/data/synthetic.py);
- `amazon2014`, `amazon2018`, `amazon2023`: one category of a McAuley-lab release, downloaded;
- `mmrec`: an MMRec data folder (split, id maps, `text_feat.npy` / `image_feat.npy`), imported;
- `custom`: your own folder with an interactions file and an items file, imported.

Every source except `mmrec` chooses its split: `random` (MMRec's per-user rule, seeded by `data_seed`),
`last_out` (chronological leave-last-out), `timestamp` (global time cuts), `mmrec` (adopt an MMRec
folder's `.inter` split, Amazon and synthetic sources); Amazon 2023 also `published_last_out` /
`published_timestamp` (its released benchmark files, adopted as they are).

The four built-in names (`synthetic`, `baby`, `sports`, `clothing`) exist even when params.yaml does
not list them; an entry in params.yaml replaces the built-in entry of that name (keys it leaves out
keep the built-in values when the source is the same).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from viral.config import ConfigError, bounded, build, choices
from viral.data import releases
from viral.data.config import SyntheticConfig

SPLIT_RULES = ("random", "last_out", "timestamp", "mmrec")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True, kw_only=True)
class SplitSettings:
    """How a dataset's interactions are split (every source but `mmrec`)."""

    split: Literal["random", "last_out", "timestamp", "mmrec"] = "random"
    # split: timestamp: interactions from valid_from on are valid, from test_from on test (the
    # dataset's own time unit: seconds for 2014/2018, milliseconds for 2023).
    valid_from: int | None = bounded(None, ge=0)
    test_from: int | None = bounded(None, ge=0)
    # split: mmrec: an MMRec folder whose `.inter` split is adopted (its asins must be this dataset's)
    mmrec_dir: str = ""

    def __post_init__(self) -> None:
        if self.split == "timestamp":
            if self.valid_from is None or self.test_from is None:
                raise ConfigError("split: timestamp needs valid_from and test_from")
            if self.valid_from > self.test_from:
                raise ConfigError(f"valid_from ({self.valid_from}) must not be after test_from ({self.test_from})")
        if self.split == "mmrec" and not self.mmrec_dir.strip():
            raise ConfigError("split: mmrec needs mmrec_dir (an MMRec data folder)")
        if self.split != "mmrec" and self.mmrec_dir:
            raise ConfigError(f"mmrec_dir: only read with split: mmrec (split is {self.split})")


@dataclass(frozen=True, kw_only=True)
class SyntheticDataset(SyntheticConfig, SplitSettings):
    """`source: synthetic`: the generator's settings (see SyntheticConfig) and the split."""

    def __post_init__(self) -> None:
        SyntheticConfig.__post_init__(self)
        SplitSettings.__post_init__(self)

    def generator(self) -> SyntheticConfig:
        """The generator's own config (what its truth.json records)."""
        return SyntheticConfig(**{name: getattr(self, name) for name in SyntheticConfig.__dataclass_fields__})


@dataclass(frozen=True, kw_only=True)
class Amazon2014Dataset(SplitSettings):
    category: str = choices(releases.AMAZON_2014)


@dataclass(frozen=True, kw_only=True)
class Amazon2018Dataset(SplitSettings):
    category: str = choices(releases.AMAZON_2018)


@dataclass(frozen=True, kw_only=True)
class Amazon2023Dataset(SplitSettings):
    category: str = choices(releases.AMAZON_2023)
    split: Literal["random", "last_out", "timestamp", "mmrec", "published_last_out",
                   "published_timestamp"] = "random"
    # The published benchmark's cut points (milliseconds), used by split: timestamp unless set.
    valid_from: int | None = bounded(releases.AMAZON_2023_VALID_FROM_MS, ge=0)
    test_from: int | None = bounded(releases.AMAZON_2023_TEST_FROM_MS, ge=0)


@dataclass(frozen=True, kw_only=True)
class MMRecDataset:
    """`source: mmrec`: an MMRec data folder; its split is adopted and its features are the features."""

    path: str

    def __post_init__(self) -> None:
        if not self.path.strip():
            raise ConfigError("path: expected an MMRec data folder")


@dataclass(frozen=True)
class CustomColumns:
    """Column names in the custom files (interactions: user, item, rating, timestamp; items: the rest)."""

    user: str = "user"
    item: str = "item"
    rating: str = "rating"          # optional column
    timestamp: str = "timestamp"    # optional column (integers: seconds or milliseconds since 1970)
    title: str = "title"
    brand: str = "brand"            # optional
    categories: str = "categories"  # optional: a list (JSON lines / Parquet) or text split at categories_separator
    description: str = "description"  # optional
    image: str = "image"            # optional: an http(s) URL or a path relative to the folder

    def __post_init__(self) -> None:
        for name in dataclasses.fields(self):
            if not getattr(self, name.name).strip():
                raise ConfigError(f"{name.name}: expected a column name")


@dataclass(frozen=True, kw_only=True)
class CustomDataset(SplitSettings):
    """`source: custom`: a folder with an interactions file and an items file (CSV, TSV, Parquet or
    JSON lines; CSV/TSV/JSON lines may be gzipped), imported whole by the download stage."""

    path: str
    split: Literal["random", "last_out", "timestamp"] = "random"
    interactions: str = "interactions.csv"
    items: str = "items.csv"
    columns: CustomColumns = field(default_factory=CustomColumns)
    categories_separator: str = "|"

    def __post_init__(self) -> None:
        SplitSettings.__post_init__(self)
        if not self.path.strip():
            raise ConfigError("path: expected the dataset folder")
        for key in ("interactions", "items"):
            value = getattr(self, key)
            if not value.strip() or value.startswith("/") or ".." in value.split("/"):
                raise ConfigError(f"{key}: expected a file name inside the folder, got {value!r}")
        if not self.categories_separator:
            raise ConfigError("categories_separator: must not be empty")


SOURCES: dict[str, type] = {
    "synthetic": SyntheticDataset,
    "amazon2014": Amazon2014Dataset,
    "amazon2018": Amazon2018Dataset,
    "amazon2023": Amazon2023Dataset,
    "mmrec": MMRecDataset,
    "custom": CustomDataset,
}
# Sources whose files the download stage fetches from the McAuley-lab mirrors.
AMAZON_SOURCES = ("amazon2014", "amazon2018", "amazon2023")

BUILTIN: dict[str, dict[str, Any]] = {
    "synthetic": {"source": "synthetic"},
    "baby": {"source": "amazon2014", "category": "Baby"},
    "sports": {"source": "amazon2014", "category": "Sports_and_Outdoors"},
    "clothing": {"source": "amazon2014", "category": "Clothing_Shoes_and_Jewelry"},
}


@dataclass(frozen=True)
class Dataset:
    """One registry entry: its name, source and typed settings."""

    name: str
    source: str
    settings: Any

    @property
    def split(self) -> str:
        """The split rule; `adopted` for an MMRec folder (its own split)."""
        return getattr(self.settings, "split", "adopted")

    @property
    def category(self) -> str:
        """The category in the raw file names (Amazon and synthetic sources; "" otherwise)."""
        return getattr(self.settings, "category", "")


def _entry(name: str, raw: Any, base: Dataset | None) -> Dataset:
    where = f"datasets.{name}"
    if not NAME.fullmatch(name):
        raise ConfigError(f"{where}: a dataset name is a folder name: letters, digits, '_', '-', '.'")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with a source and its settings, got {raw!r}")
    settings = dict(raw)
    source = settings.pop("source", None)
    if source not in SOURCES:
        got = "missing" if source is None else f"unknown source {source!r}"
        raise ConfigError(f"{where}.source: {got}; valid: {', '.join(SOURCES)}")
    same = base.settings if base is not None and base.source == source else None
    return Dataset(name, source, build(SOURCES[source], settings, where, same))


def parse_datasets(raw: Any) -> dict[str, Dataset]:
    """The built-in entries overlaid with the `datasets:` section of params.yaml."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"datasets: expected a mapping of dataset name -> source and settings, got {raw!r}")
    registry = {name: _entry(name, entry, None) for name, entry in BUILTIN.items()}
    for name, entry in raw.items():
        registry[str(name)] = _entry(str(name), entry, registry.get(str(name)))
    return registry


def builtin_datasets() -> dict[str, Dataset]:
    return parse_datasets({})
