"""The on-disk format of the images stage: Parquet shards of image bytes plus a per-item status table.

Layout of `data/images/<dataset>/` (docs/artifacts.md): `shard-00000.parquet`, ... holding
`itemID, asin, image, sha256, width, height` for every item whose image decoded, and `status.parquet`
with one row per item (`itemID, asin, status, detail`). Readers here are what captioning and encoding use.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SHARD_PATTERN = "shard-*.parquet"
STATUS_FILE = "status.parquet"
# skipped: the dataset brings its own image features (an MMRec folder), so no image is fetched.
STATUSES = ("ok", "http_error", "not_image", "empty_url", "timeout", "error", "skipped")

IMAGE_SCHEMA = pa.schema(
    [
        ("itemID", pa.int64()),
        ("asin", pa.string()),
        ("image", pa.binary()),
        ("sha256", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
    ]
)
STATUS_SCHEMA = pa.schema(
    [("itemID", pa.int64()), ("asin", pa.string()), ("status", pa.string()), ("detail", pa.string())]
)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def shard_paths(images_dir: str | Path) -> list[Path]:
    return sorted(Path(images_dir).glob(SHARD_PATTERN))


def load_images(images_dir: str | Path) -> pa.Table:
    """Every stored image as one table `itemID, asin, image, sha256, width, height`, sorted by itemID."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: no images folder (run the images stage first)")
    tables = [pq.read_table(path, schema=IMAGE_SCHEMA) for path in shard_paths(images_dir)]
    if not tables:
        return IMAGE_SCHEMA.empty_table()
    return pa.concat_tables(tables).sort_by("itemID")


def load_image_status(images_dir: str | Path) -> pd.DataFrame:
    """The per-item status table `itemID, asin, status, detail`, sorted by itemID."""
    path = Path(images_dir) / STATUS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no image status table (run the images stage first)")
    frame = pq.read_table(path, schema=STATUS_SCHEMA).to_pandas()
    return frame.sort_values("itemID", ignore_index=True)
