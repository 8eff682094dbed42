"""The user–item bipartite graph with the LightGCN symmetric normalisation."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def check_pairs(pairs: np.ndarray, n_users: int, n_items: int) -> np.ndarray:
    """Return `pairs` as (n, 2) int64, or raise ValueError naming what is wrong."""
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"train pairs: expected shape (n, 2) [user, item], got {pairs.shape}")
    if not np.issubdtype(pairs.dtype, np.integer):
        raise ValueError(f"train pairs: expected integer ids, got dtype {pairs.dtype}")
    pairs = pairs.astype(np.int64, copy=False)
    for col, name, bound in ((0, "user", n_users), (1, "item", n_items)):
        ids = pairs[:, col]
        if len(ids) and (ids.min() < 0 or ids.max() >= bound):
            bad = ids[(ids < 0) | (ids >= bound)][0]
            raise ValueError(f"train pairs: {name} id {bad} outside [0, {bound})")
    return pairs


def interaction_matrix(pairs: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary (n_users, n_items) CSR matrix R; a pair listed twice counts once."""
    pairs = check_pairs(pairs, n_users, n_items)
    ones = np.ones(len(pairs), dtype=np.float32)
    r = sp.csr_matrix((ones, (pairs[:, 0], pairs[:, 1])), shape=(n_users, n_items))
    r.sum_duplicates()
    r.data[:] = 1.0
    return r


def normalized_adjacency(train_pairs: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """(n_users + n_items) square CSR, users first: A[u, n_users + i] = 1 / sqrt(|N_u| |N_i|).

    Symmetric, float32, sorted indices. Duplicated pairs count once; nodes without train edges
    keep empty rows (no division by zero).
    """
    r = interaction_matrix(train_pairs, n_users, n_items).tocoo()
    user_deg = np.bincount(r.row, minlength=n_users).astype(np.float64)
    item_deg = np.bincount(r.col, minlength=n_items).astype(np.float64)
    values = (1.0 / np.sqrt(user_deg[r.row] * item_deg[r.col])).astype(np.float32)
    rows = np.concatenate([r.row, r.col + n_users])
    cols = np.concatenate([r.col + n_users, r.row])
    n = n_users + n_items
    adj = sp.csr_matrix((np.concatenate([values, values]), (rows, cols)), shape=(n, n))
    adj.sort_indices()
    return adj
