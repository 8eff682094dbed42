"""Full-ranking evaluation (model-spec §2.3): score ALL items, mask only each user's TRAIN items, take
the top 50 on the device, and average Recall/NDCG/Precision/MAP over the users of each split.

Valid and test share the scores and the top-K (both mask only train items), so one pass serves both.
Per batch of users: one matrix product, one masked fill, one top-k; no Python loop over users.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from viral.models.base import Recommender
from viral.train.data import TrainData
from viral.train.metrics import TOPK, mean_metrics, metric_sums


@dataclass
class UserItems:
    """A user -> items CSR index on the device (indptr over all users, item ids)."""

    indptr: torch.Tensor
    items: torch.Tensor

    @classmethod
    def from_pairs(cls, pairs: np.ndarray, n_users: int, device: torch.device) -> "UserItems":
        order = np.lexsort((pairs[:, 1], pairs[:, 0]))
        counts = np.bincount(pairs[:, 0], minlength=n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return cls(torch.from_numpy(indptr).to(device), torch.from_numpy(pairs[order, 1].copy()).to(device))

    def counts(self, users: torch.Tensor) -> torch.Tensor:
        return self.indptr[users + 1] - self.indptr[users]

    def entries(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row in `users`, item) of every item of every user in `users`, without a Python loop."""
        counts = self.counts(users)
        rows = torch.repeat_interleave(torch.arange(len(users), device=users.device), counts)
        starts = torch.repeat_interleave(self.indptr[users] - (counts.cumsum(0) - counts), counts)
        return rows, self.items[starts + torch.arange(len(rows), device=users.device)]


class Evaluator:
    """Holds the device-side indexes of one dataset so that each evaluation only scores and ranks."""

    def __init__(self, data: TrainData, device: torch.device, batch_size: int = 4096, ks: tuple[int, ...] = TOPK):
        inputs = data.inputs
        self.n_items = inputs.n_items
        self.ks = ks
        self.batch_size = batch_size
        self.train = UserItems.from_pairs(inputs.train_pairs, inputs.n_users, device)
        self.relevant = {split: UserItems.from_pairs(pairs, inputs.n_users, device)
                         for split, pairs in data.held_out.items()}
        # Evaluated users (MMRec's cold-start filter): >= 1 train item and >= 1 item in some split.
        has_train = self.train.counts(torch.arange(inputs.n_users, device=device)) > 0
        users = torch.arange(inputs.n_users, device=device)
        self.split_users = {split: users[has_train & (index.counts(users) > 0)]
                            for split, index in self.relevant.items()}
        empty = [split for split, split_users in self.split_users.items() if len(split_users) == 0]
        if empty:
            raise ValueError(f"no user has both train and {empty[0]} interactions: nothing to evaluate")
        any_split = torch.zeros(inputs.n_users, dtype=torch.bool, device=device)
        for split_users in self.split_users.values():
            any_split[split_users] = True
        self.users = users[any_split]

    @torch.no_grad()
    def evaluate(self, model: Recommender) -> dict[str, dict[str, float]]:
        """{split: {metric@k: value}} with embeddings recomputed in eval mode."""
        was_training = model.training
        model.eval()
        try:
            user_emb, item_emb = model.embeddings()
        finally:
            model.train(was_training)
        depth = min(max(self.ks), self.n_items)
        totals: dict[str, dict[str, torch.Tensor]] = {}
        for start in range(0, len(self.users), self.batch_size):
            users = self.users[start : start + self.batch_size]
            scores = user_emb[users] @ item_emb.T
            scores[self.train.entries(users)] = -torch.inf
            top = scores.topk(depth, dim=1).indices
            for split, index in self.relevant.items():
                sums = self._batch_sums(users, top, index)
                previous = totals.get(split)
                totals[split] = sums if previous is None else {k: previous[k] + v for k, v in sums.items()}
        return {split: mean_metrics(totals[split], len(self.split_users[split])) for split in self.relevant}

    def _batch_sums(self, users: torch.Tensor, top: torch.Tensor, index: UserItems) -> dict[str, torch.Tensor]:
        n_relevant = index.counts(users)
        keep = n_relevant > 0
        is_relevant = torch.zeros(len(users), self.n_items, dtype=torch.bool, device=users.device)
        is_relevant[index.entries(users)] = True
        hits = is_relevant.gather(1, top)
        return metric_sums(hits[keep], n_relevant[keep], self.ks)


def evaluate(model: Recommender, data: TrainData, device: torch.device | str = "cpu",
             batch_size: int = 4096) -> dict[str, dict[str, float]]:
    """One-off evaluation of `model` on every held-out split of `data` (see Evaluator)."""
    return Evaluator(data, torch.device(device), batch_size).evaluate(model)
