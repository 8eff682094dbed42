"""MMRec's negative sampling, vectorised: one negative per (user, positive) pair, drawn uniformly from
the items that occur in the TRAIN split and redrawn while it lies in the user's train history."""
from __future__ import annotations

import numpy as np


class NegativeSampler:
    def __init__(self, train_pairs: np.ndarray, n_items: int) -> None:
        self.n_items = n_items
        # Sorted (user * n_items + item) keys: membership of a whole batch is one searchsorted.
        self.seen = np.unique(train_pairs[:, 0] * n_items + train_pairs[:, 1])
        self.pool = np.unique(train_pairs[:, 1])
        users_with_all = np.bincount(train_pairs[:, 0]) >= len(self.pool)
        if users_with_all.any():
            user = int(np.flatnonzero(users_with_all)[0])
            raise ValueError(f"user {user} has every train item in its history: no negative can be drawn")

    def in_history(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.n_items + items
        at = np.searchsorted(self.seen, keys).clip(max=len(self.seen) - 1)
        return self.seen[at] == keys

    def sample(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One negative item per entry of `users` (int64 array)."""
        negatives = self.pool[rng.integers(len(self.pool), size=len(users))]
        redraw = np.flatnonzero(self.in_history(users, negatives))
        while len(redraw):
            negatives[redraw] = self.pool[rng.integers(len(self.pool), size=len(redraw))]
            redraw = redraw[self.in_history(users[redraw], negatives[redraw])]
        return negatives
