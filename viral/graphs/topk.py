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
    return np.searchsorted(sorted_rows, sorted_rows, side="left")


def top_k_entries(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, k: int) -> RowEntries:
    """Keep at most `k` entries per row among the candidates, best first (value desc, col asc)."""
    order = np.lexsort((cols, -values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    keep = np.arange(len(rows)) - row_starts(rows) < k
    return RowEntries(rows[keep], cols[keep], values[keep])


def dense_top_k(block, k: int) -> RowEntries:
    """Top-k entries of every row of a dense torch block (rows relative to the block).

    torch.topk only finds each row's k-th largest value; every entry >= it is a candidate (this keeps
    all ties at the boundary), and `top_k_entries` then cuts ties by column id.
    """
    import torch

    if k <= 0 or block.shape[0] == 0:
        empty = np.zeros(0, dtype=np.int64)
        return RowEntries(empty, empty, np.zeros(0, dtype=np.float32))
    kth = torch.topk(block, k, dim=1, sorted=False).values.min(dim=1, keepdim=True).values
    rows, cols = torch.nonzero(block >= kth, as_tuple=True)
    values = block[rows, cols]
    return top_k_entries(rows.numpy(), cols.numpy(), values.numpy(), k)
