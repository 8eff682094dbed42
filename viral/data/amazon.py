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
import gzip
import json
import logging
import re
import zlib
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from viral.io import atomic_path
from viral.stage import StageError

log = logging.getLogger(__name__)

# Dataset name -> category in the 2014 file names. `synthetic` takes its category from SyntheticConfig.
CATEGORIES: dict[str, str] = {
    "baby": "Baby",
    "sports": "Sports_and_Outdoors",
    "clothing": "Clothing_Shoes_and_Jewelry",
}

REVIEW_COLUMNS = ("reviewerID", "asin", "overall", "unixReviewTime")
META_COLUMNS = ("asin", "title", "brand", "description", "categories", "imUrl", "price")
FEATURE_DIM = 4096
ASIN_BYTES = 10

BadLines = Literal["error", "skip"]


class RawFormatError(StageError):
    """A raw file that does not follow its format (reported as one line)."""


class _BadLine(ValueError):
    """One malformed line; the message says what was expected."""


def category(dataset: str, synthetic_category: str = "Synthetic") -> str:
    """The category part of the raw file names of `dataset`."""
    if dataset == "synthetic":
        return synthetic_category
    if dataset not in CATEGORIES:
        raise ValueError(f"unknown Amazon dataset {dataset!r}; valid: synthetic, {', '.join(sorted(CATEGORIES))}")
    return CATEGORIES[dataset]


def reviews_name(cat: str) -> str:
    return f"reviews_{cat}_5.json.gz"


def meta_name(cat: str) -> str:
    return f"meta_{cat}.json.gz"


def image_features_name(cat: str) -> str:
    return f"image_features_{cat}.b"


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line) of a gzip file; a damaged gzip becomes a RawFormatError."""
    number = 0
    try:
        with gzip.open(path, "rb") as stream:
            for number, line in enumerate(stream, start=1):
                yield number, line
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise RawFormatError(
            f"{path}: truncated or corrupt gzip after line {number} ({err}); delete the file and download it again"
        ) from None


def _read_records(
    path: str | Path,
    parse: Callable[[bytes], dict[str, Any]],
    what: str,
    bad_lines: BadLines,
    keep: Callable[[bytes], bool] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Parse every non-blank line of `path` with `parse`; returns the records and the count of skipped lines."""
    if bad_lines not in ("error", "skip"):
        raise ValueError(f"bad_lines must be 'error' or 'skip', got {bad_lines!r}")
    path = Path(path)
    if not path.is_file():
        raise RawFormatError(f"{path}: no such file")
    records: list[dict[str, Any]] = []
    skipped = 0
    for number, line in _lines(path):
        if not line.strip() or (keep is not None and not keep(line)):
            continue
        try:
            records.append(parse(line))
        except _BadLine as err:
            if bad_lines == "error":
                raise RawFormatError(
                    f"{path}:{number}: expected {what}: {err} (prepare.bad_lines: skip to skip such lines)"
                ) from None
            skipped += 1
    if skipped:
        log.warning("%s: skipped %d malformed lines", path, skipped)
    return records, skipped


def _field(record: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = record.get(name, default)
    if value is None:
        return default
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _BadLine(f"field {name!r} has a {type(value).__name__}: {value!r:.60}")
    return value


def _required_text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise _BadLine(f"missing or empty field {name!r}")
    return value


def _parse_review(line: bytes) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _BadLine(f"invalid JSON ({err})") from None
    if not isinstance(record, dict):
        raise _BadLine(f"a JSON object, got {type(record).__name__}")
    overall = _field(record, "overall", (int, float), float("nan"))
    timestamp = _field(record, "unixReviewTime", int, None)
    return {
        "reviewerID": _required_text(record, "reviewerID"),
        "asin": _required_text(record, "asin"),
        "overall": float(overall),
        "unixReviewTime": timestamp,
    }


def read_reviews(path: str | Path, bad_lines: BadLines = "error") -> pd.DataFrame:
    """A `reviews_<Cat>_5.json.gz` file as `reviewerID, asin (str), overall (float64, NaN when absent),
    unixReviewTime (Int64, <NA> when absent)`, in file order; `attrs["bad_lines"]` counts skipped lines."""
    records, skipped = _read_records(path, _parse_review, "a JSON review object", bad_lines)
    frame = pd.DataFrame.from_records(records, columns=list(REVIEW_COLUMNS))
    frame = frame.astype(
        {"reviewerID": "string", "asin": "string", "overall": "float64", "unixReviewTime": "Int64"}
    )
    frame.attrs["bad_lines"] = skipped
    return frame


def _categories(record: dict[str, Any]) -> list[list[str]]:
    value = _field(record, "categories", list, [])
    if not all(isinstance(path, list) and all(isinstance(name, str) for name in path) for path in value):
        raise _BadLine(f"field 'categories' must be a list of lists of str, got {value!r:.60}")
    return value


def _parse_meta(line: bytes) -> dict[str, Any]:
    try:
        record = ast.literal_eval(line.decode("utf-8"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError, UnicodeDecodeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise _BadLine(f"a python-literal dict ({reason})") from None
    if not isinstance(record, dict):
        raise _BadLine(f"a python-literal dict, got {type(record).__name__}")
    price = _field(record, "price", (int, float), None)
    return {
        "asin": _required_text(record, "asin"),
        "title": _field(record, "title", str, ""),
        "brand": _field(record, "brand", str, ""),
        "description": _field(record, "description", str, ""),
        "categories": _categories(record),
        "imUrl": _field(record, "imUrl", str, ""),
        "price": None if price is None else float(price),
    }


# The asin of a meta line without parsing it: lets `read_meta(asins=...)` skip the (slow) literal_eval
# of the many items that the 5-core reviews never mention.
_META_ASIN = re.compile(rb"""['"]asin['"]\s*:\s*['"]([^'"]+)['"]""")


def read_meta(
    path: str | Path, bad_lines: BadLines = "error", asins: Collection[str] | None = None
) -> pd.DataFrame:
    """A `meta_<Cat>.json.gz` file as `asin, title, brand, description (str, "" when absent),
    categories (list of category paths, [] when absent), imUrl (str), price (float64, NaN when absent)`.

    With `asins`, only lines whose asin is in that set are parsed (lines whose asin cannot be seen
    without parsing are parsed too, so a malformed line is still reported); `attrs["bad_lines"]`
    counts skipped lines.
    """
    keep = None
    if asins is not None:
        wanted = {asin.encode() for asin in asins}

        def keep(line: bytes) -> bool:
            match = _META_ASIN.search(line)
            return match is None or match.group(1) in wanted

    records, skipped = _read_records(path, _parse_meta, "a python-literal meta dict", bad_lines, keep)
    frame = pd.DataFrame.from_records(records, columns=list(META_COLUMNS))
    frame = frame.astype(
        {"asin": "string", "title": "string", "brand": "string", "description": "string",
         "imUrl": "string", "price": "float64"}
    )
    frame.attrs["bad_lines"] = skipped
    return frame


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
