"""Iterative k-core filtering of an interaction list, as MMRec's preprocessing does (users and items)."""
from __future__ import annotations

import numpy as np


def kcore_mask(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the interactions that survive the iterative k-core.

    Repeatedly drops every interaction whose user or item has fewer than `k` remaining interactions,
    until no such user or item is left. `users` and `items` are integer codes (e.g. from `pd.factorize`).
    """
    users = np.asarray(users)
    items = np.asarray(items)
    keep = np.ones(len(users), dtype=bool)
    n_users = int(users.max()) + 1 if len(users) else 0
    n_items = int(items.max()) + 1 if len(items) else 0
    while True:
        user_degree = np.bincount(users[keep], minlength=n_users)
        item_degree = np.bincount(items[keep], minlength=n_items)
        weak = keep & ((user_degree[users] < k) | (item_degree[items] < k))
        if not weak.any():
            return keep
        keep &= ~weak
