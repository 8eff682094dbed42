"""Place per-item rows into an (n_items, d) matrix and fill the items without one, as MMRec does."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from viral.stage import StageError


def fill_with_mean(n_items: int, item_ids: Sequence[int], rows: np.ndarray, normalize: bool,
                   what: str) -> tuple[np.ndarray, np.ndarray]:
    """(matrix, imputed): row `item_ids[k]` = `rows[k]`; every other item gets the mean of `rows`.

    MMRec fills items without an image feature with the mean of all found features. With `normalize`
    the mean is rescaled to unit length so that every row of a normalised file stays unit-norm.
    """
    ids = np.asarray(item_ids, dtype=np.int64)
    if len(ids) and (ids.min() < 0 or ids.max() >= n_items):
        raise StageError(f"{what}: itemID outside 0..{n_items - 1} (found {ids.min()}..{ids.max()})")
    if len(np.unique(ids)) != len(ids):
        raise StageError(f"{what}: some itemIDs appear more than once")
    if len(ids) == 0:
        raise StageError(f"{what}: no item has a usable value, nothing to take the mean of")
    matrix = np.empty((n_items, rows.shape[1]), dtype=np.float32)
    matrix[ids] = rows
    imputed = np.ones(n_items, dtype=bool)
    imputed[ids] = False
    if imputed.any():
        mean = rows.mean(axis=0, dtype=np.float64)
        if normalize:
            norm = np.linalg.norm(mean)
            mean = mean / norm if norm > 0 else mean
        matrix[imputed] = mean.astype(np.float32)
    return matrix, imputed
