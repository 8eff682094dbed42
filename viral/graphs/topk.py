"""Deterministic per-row top-k selection shared by the kNN graphs.

Order within a row: value descending, then column id ascending, so ties never depend on the
platform, the thread count or the chunk size.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class RowEntries(NamedTuple):
    """Sparse entries sorted by row, then by (value desc, column asc) within each row."""

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray


def row_starts(sorted_rows: np.ndarray) -> np.ndarray:
    """For each entry of a row-sorted array, the index of the first entry of its row."""
    if len(sorted_rows) == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
    return np.repeat(first, np.diff(np.r_[first, len(sorted_rows)]))


def _first_k(order: np.ndarray, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, k: int) -> RowEntries:
    """Apply the ranking `order`, then keep each row's first k entries."""
    sorted_rows = rows[order]
    chosen = order[np.arange(len(order)) - row_starts(sorted_rows) < k]
    return RowEntries(rows[chosen], cols[chosen], values[chosen])


def top_k_entries(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, k: int) -> RowEntries:
    """Keep at most `k` entries per row among the candidates, best first (value desc, col asc)."""
    return _first_k(np.lexsort((cols, -values, rows)), rows, cols, values, k)


def top_k_counts(rows: np.ndarray, cols: np.ndarray, counts: np.ndarray, k: int) -> RowEntries:
    """`top_k_entries` for non-negative integer values: one packed int64 sort key instead of a
    three-key lexsort (several times faster on the tens of millions of co-interaction counts)."""
    if len(rows) == 0:
        return RowEntries(rows, cols, counts)
    levels = int(counts.max()) + 1
    n_cols = int(cols.max()) + 1
    row_base = int(rows.min())
    if (int(rows.max()) - row_base + 1) * levels * n_cols >= 2**63:
        return top_k_entries(rows, cols, counts, k)
    key = ((rows - row_base) * levels + (levels - 1 - counts.astype(np.int64))) * n_cols + cols
    return _first_k(np.argsort(key), rows, cols, counts, k)


def dense_top_k(block, k: int) -> RowEntries:
    """Top-k entries of every row of a dense torch block (rows relative to the block).

    torch.topk returns k + 1 values per row; where the (k+1)-th is strictly below the k-th the set is
    unique. Rows where it ties are redone from every entry >= their k-th value, and `top_k_entries`
    then cuts the tie by column id. Entries equal to -inf mark excluded pairs and are never returned.
    """
    import torch

    n_rows, n_cols = block.shape
    k = min(k, n_cols)
    if k <= 0 or n_rows == 0:
        return empty_entries()
    values, cols = torch.topk(block, min(k + 1, n_cols), dim=1, sorted=True)
    if values.shape[1] > k:
        tied = values[:, k] == values[:, k - 1]
    else:
        tied = torch.zeros(n_rows, dtype=torch.bool)
    clear = torch.nonzero(~tied).ravel()
    rows = clear[:, None].expand(-1, k)
    parts = [(rows.reshape(-1), cols[clear, :k].reshape(-1), values[clear, :k].reshape(-1))]
    tied_rows = torch.nonzero(tied).ravel()
    if len(tied_rows):
        sub = block[tied_rows]
        sub_rows, sub_cols = torch.nonzero(sub >= values[tied_rows, k - 1 : k], as_tuple=True)
        parts.append((tied_rows[sub_rows], sub_cols, sub[sub_rows, sub_cols]))
    rows, cols, values = (torch.cat(column).numpy() for column in zip(*parts))
    finite = values > -np.inf
    return top_k_entries(rows[finite], cols[finite], values[finite], k)


def empty_entries() -> RowEntries:
    empty = np.zeros(0, dtype=np.int64)
    return RowEntries(empty, empty, np.zeros(0, dtype=np.float32))


def concat_entries(parts: list[RowEntries]) -> RowEntries:
    return RowEntries(*(np.concatenate(column) for column in zip(empty_entries(), *parts)))
