"""The prepared dataset on disk (docs/artifacts.md): interactions, items and users as Parquet, plus stats.

Writing replaces the whole folder at once (`atomic_dir`), so an interrupted run never leaves a mix.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from viral.io import atomic_dir, write_json

INTERACTIONS_FILE = "interactions.parquet"
ITEMS_FILE = "items.parquet"
USERS_FILE = "users.parquet"
STATS_FILE = "stats.json"

INTERACTIONS_SCHEMA = pa.schema(
    [
        ("userID", pa.int64()),
        ("itemID", pa.int64()),
        ("split", pa.int8()),
        ("rating", pa.float32()),
        ("timestamp", pa.int64()),
    ]
)
ITEMS_SCHEMA = pa.schema(
    [
        ("itemID", pa.int64()),
        ("asin", pa.string()),
        ("title", pa.string()),
        ("brand", pa.string()),
        ("description", pa.string()),
        ("categories", pa.list_(pa.list_(pa.string()))),
        ("imUrl", pa.string()),
        ("price", pa.float64()),
    ]
)
USERS_SCHEMA = pa.schema([("userID", pa.int64()), ("reviewerID", pa.string())])
TEXT_FIELDS = ("title", "brand", "description", "imUrl")


class Prepared(NamedTuple):
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame


def empty_items(asins: pd.Series) -> pd.DataFrame:
    """Items frame for `asins` (row i = itemID i) with every text field empty and no price."""
    n = len(asins)
    frame = pd.DataFrame({"itemID": range(n), "asin": asins.astype(str).to_numpy()})
    for name in TEXT_FIELDS:
        frame[name] = ""
    frame["categories"] = [[] for _ in range(n)]
    frame["price"] = float("nan")
    return frame


def items_with_meta(asins: pd.Series, meta: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Items frame for `asins` (row i = itemID i) filled from a `read_meta` frame; also the count of
    items that had no meta line (their fields stay empty)."""
    items = empty_items(asins)
    meta = meta.drop_duplicates("asin").set_index("asin")
    found = items["asin"].isin(meta.index)
    rows = meta.reindex(items.loc[found, "asin"])
    for name in (*TEXT_FIELDS, "price"):
        items.loc[found, name] = rows[name].to_numpy()
    items.loc[found, "categories"] = pd.Series(list(rows["categories"]), index=items.index[found])
    for name in TEXT_FIELDS:
        items[name] = items[name].fillna("").astype(str)
    return items, int((~found).sum())


def _table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)


def write_prepared(out_dir: str | Path, prepared: Prepared, stats: dict[str, Any]) -> None:
    """Write the three tables and stats.json, replacing `out_dir` as a whole."""
    with atomic_dir(out_dir) as tmp:
        pq.write_table(_table(prepared.interactions, INTERACTIONS_SCHEMA), tmp / INTERACTIONS_FILE)
        pq.write_table(_table(prepared.items, ITEMS_SCHEMA), tmp / ITEMS_FILE)
        pq.write_table(_table(prepared.users, USERS_SCHEMA), tmp / USERS_FILE)
        write_json(tmp / STATS_FILE, stats)


def _read(path: Path, schema: pa.Schema) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (run the prepare stage first)")
    return pq.read_table(path, schema=schema).to_pandas()


def load_prepared(prepared_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interactions, items) of a prepared folder; items sorted by itemID."""
    prepared_dir = Path(prepared_dir)
    interactions = _read(prepared_dir / INTERACTIONS_FILE, INTERACTIONS_SCHEMA)
    items = _read(prepared_dir / ITEMS_FILE, ITEMS_SCHEMA).sort_values("itemID", ignore_index=True)
    return interactions, items


def load_users(prepared_dir: str | Path) -> pd.DataFrame:
    """`userID, reviewerID` of a prepared folder, sorted by userID (reviewerID null when unknown)."""
    return _read(Path(prepared_dir) / USERS_FILE, USERS_SCHEMA).sort_values("userID", ignore_index=True)


def split_counts(split: pd.Series) -> dict[str, int]:
    counts = split.value_counts()
    return {name: int(counts.get(code, 0)) for code, name in enumerate(("train", "valid", "test"))}
