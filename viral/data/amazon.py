"""Readers (and file names) of the Amazon 2014 raw formats (McAuley et al., SNAP / UCSD mirrors).

- `reviews_<Cat>_5.json.gz`: one JSON object per line.
- `meta_<Cat>.json.gz`: one python-literal dict per line (parsed with `ast.literal_eval`, never `eval`).
- `image_features_<Cat>.b`: records of a 10-byte ASCII asin followed by 4096 little-endian float32.

Every reader streams the gzip, reports a malformed line as one line naming the file, the line number
and what was expected, and with `bad_lines="skip"` skips and counts such lines instead
(`frame.attrs["bad_lines"]`). A truncated or corrupt gzip is a one-line error too.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from viral.data import releases
from viral.data.records import BadLine, BadLines, RawFormatError, field, read_records, required_text
from viral.data.reviews import ReviewFields, read_review_interactions
from viral.io import atomic_path

__all__ = ["RawFormatError", "CATEGORIES", "REVIEW_FIELDS", "read_reviews", "read_meta", "read_image_features",
           "write_image_features", "remote_files", "reviews_name", "meta_name", "image_features_name"]

CATEGORIES = releases.AMAZON_2014
REVIEW_FIELDS = ReviewFields(user="reviewerID", item="asin", rating="overall", timestamp="unixReviewTime")
REVIEW_COLUMNS = ("reviewerID", "asin", "overall", "unixReviewTime")
META_COLUMNS = ("asin", "title", "brand", "description", "categories", "imUrl", "price")
FEATURE_DIM = 4096
ASIN_BYTES = 10


def remote_files(cat: str, image_features: bool) -> list[str]:
    """The files of a category, relative to a mirror's `categoryFiles` folder."""
    names = [reviews_name(cat), meta_name(cat)]
    if image_features:
        names.append(image_features_name(cat))
    return names


def reviews_name(cat: str) -> str:
    return f"reviews_{cat}_5.json.gz"


def meta_name(cat: str) -> str:
    return f"meta_{cat}.json.gz"


def image_features_name(cat: str) -> str:
    return f"image_features_{cat}.b"


def read_reviews(path: str | Path, bad_lines: BadLines = "error") -> pd.DataFrame:
    """A `reviews_<Cat>_5.json.gz` file as `reviewerID, asin (str), overall (float64, NaN when absent),
    unixReviewTime (Int64, <NA> when absent)`, in file order; `attrs["bad_lines"]` counts skipped lines."""
    raw = read_review_interactions(path, REVIEW_FIELDS, bad_lines)
    frame = raw.frame()
    frame.attrs["bad_lines"] = raw.bad_lines
    return frame


def _categories(record: dict[str, Any]) -> list[list[str]]:
    value = field(record, "categories", list, [])
    if not all(isinstance(path, list) and all(isinstance(name, str) for name in path) for path in value):
        raise BadLine(f"field 'categories' must be a list of lists of str, got {value!r:.60}")
    return value


def _parse_meta(line: bytes) -> dict[str, Any]:
    try:
        record = ast.literal_eval(line.decode("utf-8"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise BadLine(f"a python-literal dict ({reason})") from None
    if not isinstance(record, dict):
        raise BadLine(f"a python-literal dict, got {type(record).__name__}")
    price = field(record, "price", (int, float), None)
    return {
        "asin": required_text(record, "asin"),
        "title": field(record, "title", str, ""),
        "brand": field(record, "brand", str, ""),
        "description": field(record, "description", str, ""),
        "categories": _categories(record),
        "imUrl": field(record, "imUrl", str, ""),
        "price": None if price is None else float(price),
    }


# The asin of a meta line without parsing it: lets `read_meta(asins=...)` skip the (slow) literal_eval
# of the many items that the 5-core reviews never mention.
_META_ASIN = re.compile(rb"""['"]asin['"]\s*:\s*['"]([^'"]+)['"]""")


def read_meta_records(path: str | Path, parse: Callable[[bytes], dict[str, Any]], what: str, bad_lines: BadLines,
                      asins: Collection[str] | None, asin_pattern: re.Pattern) -> pd.DataFrame:
    """Meta lines parsed by `parse` into the `META_COLUMNS` frame (any release).

    With `asins`, only lines whose key (the first group of `asin_pattern`, found without parsing)
    is in that set are parsed; lines whose key cannot be seen are parsed too, so a malformed line is
    still reported. `attrs["bad_lines"]` counts skipped lines.
    """
    keep = None
    if asins is not None:
        wanted = {asin.encode() for asin in asins}

        def keep(line: bytes) -> bool:
            match = asin_pattern.search(line)
            return match is None or match.group(1) in wanted

    records, skipped = read_records(path, parse, what, bad_lines, keep)
    frame = pd.DataFrame.from_records(records, columns=list(META_COLUMNS))
    frame = frame.astype(
        {"asin": "string", "title": "string", "brand": "string", "description": "string",
         "imUrl": "string", "price": "float64"}
    )
    frame.attrs["bad_lines"] = skipped
    return frame


def read_meta(
    path: str | Path, bad_lines: BadLines = "error", asins: Collection[str] | None = None
) -> pd.DataFrame:
    """A `meta_<Cat>.json.gz` file as `asin, title, brand, description (str, "" when absent),
    categories (list of category paths, [] when absent), imUrl (str), price (float64, NaN when absent)`,
    restricted to `asins` when given (see `read_meta_records`)."""
    return read_meta_records(path, _parse_meta, "a python-literal meta dict", bad_lines, asins, _META_ASIN)


def read_image_features(
    path: str | Path, asins: Collection[str] | None = None
) -> tuple[list[str], np.ndarray]:
    """The records of an `image_features_<Cat>.b` file: (asins, float32 array (n, 4096)), in file order,
    restricted to `asins` when given. Streams the file record by record (the real files are GBs)."""
    path = Path(path)
    record_bytes = ASIN_BYTES + 4 * FEATURE_DIM
    size = path.stat().st_size
    if size % record_bytes:
        raise RawFormatError(
            f"{path}: size {size} is not a multiple of the {record_bytes}-byte record "
            f"(10-byte asin + {FEATURE_DIM} float32); truncated download?"
        )
    wanted = None if asins is None else set(asins)
    names: list[str] = []
    rows: list[np.ndarray] = []
    with open(path, "rb") as stream:
        for index in range(size // record_bytes):
            try:
                asin = stream.read(ASIN_BYTES).decode("ascii").strip()
            except UnicodeDecodeError:
                raise RawFormatError(f"{path}: record {index}: expected a 10-byte ASCII asin") from None
            if wanted is not None and asin not in wanted:
                stream.seek(record_bytes - ASIN_BYTES, 1)  # skip the vector without reading it
                continue
            names.append(asin)
            rows.append(np.frombuffer(stream.read(record_bytes - ASIN_BYTES), dtype="<f4"))
    features = np.stack(rows) if rows else np.zeros((0, FEATURE_DIM), dtype=np.float32)
    return names, features.astype(np.float32, copy=False)


def write_image_features(path: str | Path, asins: list[str], features: np.ndarray) -> None:
    """Write records in the `image_features_<Cat>.b` format (used by the synthetic generator and tests)."""
    features = np.asarray(features, dtype="<f4")
    if features.shape != (len(asins), FEATURE_DIM):
        raise ValueError(f"features must be ({len(asins)}, {FEATURE_DIM}), got {features.shape}")
    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        for asin, row in zip(asins, features):
            encoded = asin.encode("ascii")
            if len(encoded) != ASIN_BYTES:
                raise ValueError(f"asin {asin!r} is not {ASIN_BYTES} ASCII characters")
            stream.write(encoded)
            stream.write(row.tobytes())
