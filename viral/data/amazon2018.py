"""Amazon Review Data 2018 (Ni, Li & McAuley, EMNLP 2019): file names, layout and metadata reader.

Per category, relative to a mirror's `amazon_v2` folder (docs/datasets.md cites the sources):
- `categoryFilesSmall/<Cat>_5.json.gz`: the 5-core reviews, JSON lines with the 2014 field names
  (`reviewerID, asin, overall, unixReviewTime`, plus `verified, vote, style, image, ...`).
- `metaFiles2/meta_<Cat>.json.gz`: metadata, one strict JSON object per line: `asin, title, brand,
  feature` (list of bullet points), `description` (list of paragraphs), `category` (one path, a
  list), `main_cat, price` (a string such as "$12.99"), `imageURL` (small thumbnails) and
  `imageURLHighRes` (full size), ...

Item text recipe (the prepared `title, brand, categories, description` fields that the encode stage
turns into MMRec's sentence): title; brand; the `category` path as the single category path;
description = the `feature` bullets followed by the `description` paragraphs. Image: the first
`imageURLHighRes`, else the first `imageURL` with its size token removed (`._SS40_`), which Amazon
serves at full size.
"""
from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pandas as pd

from viral.data import amazon, releases
from viral.data.records import BadLines, field, joined_text, json_object, required_text, text_list

CATEGORIES = releases.AMAZON_2018
REVIEW_FIELDS = amazon.REVIEW_FIELDS  # the 2018 reviews keep the 2014 field names

_SIZE_TOKEN = re.compile(r"\._[^/]*_(?=\.[A-Za-z]+$)")
_PRICE = re.compile(r"\$\s*([0-9][0-9,]*(?:\.[0-9]+)?)")
_META_ASIN = re.compile(rb'"asin"\s*:\s*"([^"]+)"')


def reviews_name(cat: str) -> str:
    return f"{cat}_5.json.gz"


def meta_name(cat: str) -> str:
    return f"meta_{cat}.json.gz"


def remote_files(cat: str) -> list[str]:
    """The files of a category, relative to a mirror's `amazon_v2` folder."""
    return [f"categoryFilesSmall/{reviews_name(cat)}", f"metaFiles2/{meta_name(cat)}"]


def full_size(url: str) -> str:
    """An Amazon image URL without its resize token (`..._SS40_.jpg` -> `....jpg`)."""
    return _SIZE_TOKEN.sub("", url)


def item_image(high_res: list[str], thumbnails: list[str]) -> str:
    if high_res:
        return high_res[0]
    return full_size(thumbnails[0]) if thumbnails else ""


def parse_price(value: Any) -> float | None:
    """A price such as "$12.99" or 12.99; ranges ("$5.00 - $9.00") and other text give None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        found = _PRICE.findall(value)
        if len(found) == 1:
            return float(found[0].replace(",", ""))
    return None


def parse_meta(line: bytes) -> dict[str, Any]:
    record = json_object(line)
    path = text_list(record, "category")
    main = field(record, "main_cat", str, "")
    if not path and main and "<" not in main:  # some main_cat values are HTML <img> tags
        path = [main]
    return {
        "asin": required_text(record, "asin"),
        "title": field(record, "title", str, ""),
        "brand": field(record, "brand", str, ""),
        "description": joined_text(text_list(record, "feature"), text_list(record, "description")),
        "categories": [path] if path else [],
        "imUrl": item_image(text_list(record, "imageURLHighRes"), text_list(record, "imageURL")),
        "price": parse_price(record.get("price")),
    }


def read_meta(path: str | Path, bad_lines: BadLines = "error", asins: Collection[str] | None = None
              ) -> pd.DataFrame:
    """A `meta_<Cat>.json.gz` (2018) file as the `amazon.META_COLUMNS` frame (see the module doc)."""
    return amazon.read_meta_records(path, parse_meta, "a JSON meta object", bad_lines, asins, _META_ASIN)
