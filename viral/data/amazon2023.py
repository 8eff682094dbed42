"""Amazon Reviews 2023 (Hou et al., 2024): file names, layout, metadata reader and benchmark splits.

Per category, relative to a mirror's `amazon_2023` folder (docs/datasets.md cites the sources):
- `raw/review_categories/<Cat>.jsonl.gz`: every review, JSON lines with `rating, title, text, images,
  asin, parent_asin, user_id, timestamp` (milliseconds since 1970), `helpful_vote, verified_purchase`.
  Items are keyed by `parent_asin` (the product, whatever its size or colour variant).
- `raw/meta_categories/meta_<Cat>.jsonl.gz`: one JSON object per item with `main_category, title,
  average_rating, rating_number, features` (list), `description` (list), `price` (number or null),
  `images` (list of `{thumb, large, variant, hi_res}`), `videos, store, categories` (one path, a
  list), `details` (object), `parent_asin, bought_together`.
- `benchmark/5core/{last_out,timestamp}/<Cat>.{train,valid,test}.csv.gz`: the published 5-core
  splits, CSV with the header `user_id,parent_asin,rating,timestamp`: repeated (user, item) reviews
  dropped keeping the earliest, 5-core, then per user the latest review is test and the one before
  valid (`last_out`), or a global cut at `VALID_FROM_MS` / `TEST_FROM_MS` (`timestamp`).

Item text recipe: title; brand = `store` (else `details["Brand"]`); the `categories` path as the
single category path (else `[main_category]`); description = the `features` bullets followed by the
`description` paragraphs. Image: the `MAIN` variant (else the first), at its largest size
(`hi_res`, else `large`, else `thumb`).
"""
from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from viral.data import amazon, releases
from viral.data.amazon2018 import parse_price
from viral.data.interactions import RawInteractions, concat_interactions
from viral.data.records import BadLine, BadLines, field, joined_text, json_object, required_text, text_list
from viral.data.reviews import ReviewFields
from viral.data.split import TEST, TRAIN, VALID
from viral.data.tables import InteractionColumns, read_interaction_table

CATEGORIES = releases.AMAZON_2023
REVIEW_FIELDS = ReviewFields(user="user_id", item="parent_asin", rating="rating", timestamp="timestamp",
                             timestamp_required=True)
BENCHMARK_COLUMNS = InteractionColumns(user="user_id", item="parent_asin", rating="rating", timestamp="timestamp",
                                       where="benchmark")
VALID_FROM_MS = releases.AMAZON_2023_VALID_FROM_MS
TEST_FROM_MS = releases.AMAZON_2023_TEST_FROM_MS
# split param -> folder of the published files
PUBLISHED = {"published_last_out": "last_out", "published_timestamp": "timestamp"}
PARTS = {"train": TRAIN, "valid": VALID, "test": TEST}

_META_KEY = re.compile(rb'"parent_asin"\s*:\s*"([^"]+)"')
IMAGE_SIZES = ("hi_res", "large", "thumb")


def reviews_name(cat: str) -> str:
    return f"{cat}.jsonl.gz"


def meta_name(cat: str) -> str:
    return f"meta_{cat}.jsonl.gz"


def benchmark_name(cat: str, part: str) -> str:
    return f"{cat}.{part}.csv.gz"


def remote_files(cat: str, split: str) -> list[str]:
    """The files a dataset needs, relative to a mirror's `amazon_2023` folder: the raw reviews, or the
    published split's three files, and the metadata."""
    meta = f"raw/meta_categories/{meta_name(cat)}"
    if split in PUBLISHED:
        return [f"benchmark/5core/{PUBLISHED[split]}/{benchmark_name(cat, part)}" for part in PARTS] + [meta]
    return [f"raw/review_categories/{reviews_name(cat)}", meta]


def item_image(images: list[Any]) -> str:
    """The URL of the main image at its largest size ("" when the item has none)."""
    if not all(isinstance(image, dict) for image in images):
        raise BadLine(f"field 'images' must be a list of objects, got {images!r:.60}")
    main = [image for image in images if image.get("variant") == "MAIN"] or images
    for image in main[:1]:
        for size in IMAGE_SIZES:
            url = image.get(size)
            if isinstance(url, str) and url:
                return url
    return ""


def parse_meta(line: bytes) -> dict[str, Any]:
    record = json_object(line)
    details = field(record, "details", dict, {})
    brand = field(record, "store", str, "") or details.get("Brand", "")
    path = text_list(record, "categories")
    main = field(record, "main_category", str, "")
    if not path and main:
        path = [main]
    return {
        "asin": required_text(record, "parent_asin"),
        "title": field(record, "title", str, ""),
        "brand": brand if isinstance(brand, str) else "",
        "description": joined_text(text_list(record, "features"), text_list(record, "description")),
        "categories": [path] if path else [],
        "imUrl": item_image(field(record, "images", list, [])),
        "price": parse_price(record.get("price")),
    }


def read_meta(path: str | Path, bad_lines: BadLines = "error", asins: Collection[str] | None = None
              ) -> pd.DataFrame:
    """A `meta_<Cat>.jsonl.gz` file as the `amazon.META_COLUMNS` frame, `asin` = `parent_asin`."""
    return amazon.read_meta_records(path, parse_meta, "a JSON meta object", bad_lines, asins, _META_KEY)


def read_benchmark(paths: dict[str, Path]) -> tuple[RawInteractions, np.ndarray]:
    """The published split files (`{"train": path, "valid": path, "test": path}`) as one interaction
    list (train, then valid, then test rows) and the split label of each row."""
    parts = [read_interaction_table(paths[part], BENCHMARK_COLUMNS, timestamp_required=True) for part in PARTS]
    labels = np.concatenate([np.full(len(part), code, dtype=np.int8) for part, code in zip(parts, PARTS.values())])
    return concat_interactions(parts), labels
