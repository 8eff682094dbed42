"""Raw interactions held compactly: integer codes, not strings or records, whatever the source file.

Readers stream their file in batches into an `InteractionCollector`; `finish()` dictionary-encodes the
user and item keys (codes in order of first appearance, as MMRec's `pd.unique`) and returns
`RawInteractions`: per interaction a user code, an item code, a rating (NaN when absent) and a
timestamp (with a mask of which are known), in file order. Memory is about 20 bytes per interaction
plus the distinct keys; review text and other fields are never held.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Python-parsed rows are turned into Arrow arrays every this many rows.
FLUSH_ROWS = 1 << 16


@dataclass(frozen=True)
class RawInteractions:
    """Interactions in file order; `user[k]` indexes `user_keys` (the source's user id strings)."""

    user: np.ndarray  # int64 codes
    item: np.ndarray  # int64 codes
    user_keys: np.ndarray  # object array of str, row = code
    item_keys: np.ndarray
    rating: np.ndarray  # float32, NaN when absent
    timestamp: np.ndarray  # int64, 0 where unknown
    timestamp_known: np.ndarray  # bool
    bad_lines: int = 0

    def __len__(self) -> int:
        return len(self.user)

    def take(self, rows: np.ndarray) -> RawInteractions:
        """The interactions at `rows` (indices or a boolean mask), keeping the key tables."""
        return RawInteractions(self.user[rows], self.item[rows], self.user_keys, self.item_keys, self.rating[rows],
                               self.timestamp[rows], self.timestamp_known[rows], self.bad_lines)

    def timestamps_or_none(self) -> pd.array:
        """Timestamps as a nullable Int64 array (<NA> where unknown)."""
        return pd.arrays.IntegerArray(self.timestamp.astype(np.int64), ~self.timestamp_known)

    def frame(self) -> pd.DataFrame:
        """`reviewerID, asin, overall, unixReviewTime` (the 2014 review columns), in file order."""
        return pd.DataFrame({
            "reviewerID": pd.array(key_strings(self.user_keys, self.user), dtype="string"),
            "asin": pd.array(key_strings(self.item_keys, self.item), dtype="string"),
            "overall": self.rating.astype("float64"),
            "unixReviewTime": self.timestamps_or_none(),
        })


@dataclass
class InteractionCollector:
    """Accumulates batches of (user, item, rating, timestamp) columns; `finish()` encodes them."""

    users: list[pa.Array] = field(default_factory=list)
    items: list[pa.Array] = field(default_factory=list)
    ratings: list[np.ndarray] = field(default_factory=list)
    timestamps: list[pa.Array] = field(default_factory=list)
    _pending: list[tuple] = field(default_factory=list)

    def add_arrays(self, users: pa.Array, items: pa.Array, ratings: pa.Array | None, timestamps: pa.Array | None
                   ) -> None:
        """One batch of Arrow columns (string, string, float64 or None, int64 or None), nulls allowed in
        ratings and timestamps."""
        n = len(users)
        self.users.append(users.cast(pa.string()))
        self.items.append(items.cast(pa.string()))
        if ratings is None:
            self.ratings.append(np.full(n, np.nan, dtype=np.float32))
        else:
            self.ratings.append(pc.fill_null(ratings.cast(pa.float64()), np.nan).to_numpy().astype(np.float32))
        self.timestamps.append(pa.nulls(n, pa.int64()) if timestamps is None else timestamps.cast(pa.int64()))

    def add_row(self, user: str, item: str, rating: float, timestamp: int | None) -> None:
        """One Python-parsed row (buffered, converted to Arrow in blocks)."""
        self._pending.append((user, item, rating, timestamp))
        if len(self._pending) >= FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        users, items, ratings, timestamps = zip(*self._pending)
        self._pending = []
        self.add_arrays(pa.array(users, pa.string()), pa.array(items, pa.string()),
                        pa.array(ratings, pa.float64()), pa.array(timestamps, pa.int64()))

    def finish(self, bad_lines: int = 0) -> RawInteractions:
        self._flush()
        user, user_keys = _encode(self.users)
        self.users = []
        item, item_keys = _encode(self.items)
        self.items = []
        rating = np.concatenate(self.ratings) if self.ratings else np.zeros(0, np.float32)
        times = pa.chunked_array(self.timestamps, pa.int64())
        self.ratings, self.timestamps = [], []
        known = (~np.asarray(times.is_null())) if len(times) else np.zeros(0, bool)
        timestamp = np.asarray(pc.fill_null(times, 0)) if len(times) else np.zeros(0, np.int64)
        return RawInteractions(user, item, user_keys, item_keys, rating, timestamp.astype(np.int64),
                               known.astype(bool), bad_lines)


def has_blank(column: pa.Array) -> bool:
    """Whether a string column has a null or an empty string (a missing key)."""
    return bool(column.null_count) or bool(pc.any(pc.equal(pc.utf8_length(column), 0)).as_py())


def key_strings(keys: pa.Array, codes: np.ndarray) -> np.ndarray:
    """The key of each code, as an object array of str."""
    return keys.take(pa.array(np.asarray(codes, dtype=np.int64))).to_numpy(zero_copy_only=False)


def _encode(chunks: list[pa.Array]) -> tuple[np.ndarray, pa.Array]:
    """(int64 codes, keys) of string chunks, codes in order of first appearance."""
    if not chunks or not sum(len(chunk) for chunk in chunks):
        return np.zeros(0, np.int64), pa.array([], pa.string())
    encoded = pc.dictionary_encode(pa.chunked_array(chunks, pa.string()))
    codes = np.concatenate([np.asarray(chunk.indices) for chunk in encoded.chunks]).astype(np.int64)
    return codes, encoded.chunks[0].dictionary


def unique_pairs(raw: RawInteractions, keep: str = "first") -> np.ndarray:
    """Sorted row indices keeping one interaction per (user, item) pair: the first in file order
    (`keep="first"`, MMRec) or the one with the smallest timestamp, ties by file order
    (`keep="earliest"`, the Amazon 2023 benchmark files)."""
    if not len(raw):
        return np.zeros(0, np.int64)
    key = raw.user * np.int64(len(raw.item_keys)) + raw.item
    if keep == "first":
        _, first = np.unique(key, return_index=True)
        return np.sort(first)
    if keep != "earliest":
        raise ValueError(f"keep must be 'first' or 'earliest', got {keep!r}")
    order = np.lexsort((np.arange(len(key)), raw.timestamp, key))
    starts = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1]])
    return np.sort(order[starts])


def first_appearance_ids(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids, uniques): ids 0..n-1 numbered by first appearance in `codes` (MMRec's `pd.unique` order),
    and the original code of each id."""
    ids, uniques = pd.factorize(codes)
    return ids.astype(np.int64), np.asarray(uniques, dtype=np.int64)


def _merge_keys(key_tables: list[pa.Array]) -> tuple[list[np.ndarray], pa.Array]:
    """Per table, the map from its codes to codes of the merged key table (first appearance order)."""
    codes, keys = _encode(list(key_tables))
    bounds = np.cumsum([0, *(len(table) for table in key_tables)])
    return [codes[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])], keys


def concat_interactions(parts: list[RawInteractions]) -> RawInteractions:
    """The interactions of several files one after the other, with one shared key table per side."""
    user_maps, user_keys = _merge_keys([part.user_keys for part in parts])
    item_maps, item_keys = _merge_keys([part.item_keys for part in parts])
    return RawInteractions(
        user=np.concatenate([mapping[part.user] for mapping, part in zip(user_maps, parts)]),
        item=np.concatenate([mapping[part.item] for mapping, part in zip(item_maps, parts)]),
        user_keys=user_keys,
        item_keys=item_keys,
        rating=np.concatenate([part.rating for part in parts]),
        timestamp=np.concatenate([part.timestamp for part in parts]),
        timestamp_known=np.concatenate([part.timestamp_known for part in parts]),
        bad_lines=sum(part.bad_lines for part in parts),
    )
