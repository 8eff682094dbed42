"""Full-ranking evaluation (model-spec §2.3): score ALL items, mask only each user's TRAIN items, take
the top 50 on the device, and average Recall/NDCG/Precision/MAP over the users of each split.

Valid and test share the scores and the top-K (both mask only train items), so one pass serves both.
Per batch of users: one matrix product, one masked fill, one top-k; no Python loop over users.
The same pass also gives each user's own metrics (`evaluate_users`, for paired tests between runs), and
`modality_contribution` re-evaluates with one modality's input replaced by its mean item feature.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch

from viral.models.base import Recommender, mean_feature
from viral.train.data import TrainData
from viral.train.metrics import TOPK, mean_metrics, metric_sums, user_metrics

# What the modality-contribution report records per evaluation (the paper's Figure 1 reads @20).
CONTRIBUTION_METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


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


@dataclass
class UserMetrics:
    """One split's per-user results: `users` (n,) userIDs and metric name -> (n,) float64 values."""

    users: np.ndarray
    values: dict[str, np.ndarray]


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

    def _ranked(self, model: Recommender) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(users, their top-`depth` items) per batch, with embeddings recomputed in eval mode; the
        caller holds no_grad."""
        was_training = model.training
        model.eval()
        try:
            user_emb, item_emb = model.embeddings()
        finally:
            model.train(was_training)
        depth = min(max(self.ks), self.n_items)
        for start in range(0, len(self.users), self.batch_size):
            users = self.users[start : start + self.batch_size]
            scores = user_emb[users] @ item_emb.T
            scores[self.train.entries(users)] = -torch.inf
            yield users, scores.topk(depth, dim=1).indices

    @torch.no_grad()
    def evaluate(self, model: Recommender) -> dict[str, dict[str, float]]:
        """{split: {metric@k: value}} with embeddings recomputed in eval mode."""
        totals: dict[str, dict[str, torch.Tensor]] = {}
        for users, top in self._ranked(model):
            for split, index in self.relevant.items():
                _, hits, n_relevant = self._batch_hits(users, top, index)
                sums = metric_sums(hits, n_relevant, self.ks)
                previous = totals.get(split)
                totals[split] = sums if previous is None else {k: previous[k] + v for k, v in sums.items()}
        return {split: mean_metrics(totals[split], len(self.split_users[split])) for split in self.relevant}

    @torch.no_grad()
    def evaluate_users(self, model: Recommender) -> dict[str, UserMetrics]:
        """{split: each evaluated user's own metrics}, unrounded: their mean is what `evaluate` reports."""
        parts: dict[str, list[tuple[torch.Tensor, dict[str, torch.Tensor]]]] = {split: [] for split in self.relevant}
        for users, top in self._ranked(model):
            for split, index in self.relevant.items():
                kept, hits, n_relevant = self._batch_hits(users, top, index)
                parts[split].append((kept, user_metrics(hits, n_relevant, self.ks)))
        return {split: UserMetrics(torch.cat([u for u, _ in batches]).cpu().numpy(),
                                   {name: torch.cat([v[name] for _, v in batches]).cpu().numpy()
                                    for name in batches[0][1]})
                for split, batches in parts.items()}

    def _batch_hits(self, users: torch.Tensor, top: torch.Tensor,
                    index: UserItems) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The users of the batch with items in `index`, their hit matrix and their numbers of relevant items."""
        n_relevant = index.counts(users)
        keep = n_relevant > 0
        is_relevant = torch.zeros(len(users), self.n_items, dtype=torch.bool, device=users.device)
        is_relevant[index.entries(users)] = True
        hits = is_relevant.gather(1, top)
        return users[keep], hits[keep], n_relevant[keep]


def modality_contribution(model: Recommender, evaluator: Evaluator, split: str = "test",
                          metrics: tuple[str, ...] = CONTRIBUTION_METRICS) -> dict[str, Any]:
    """`split` metrics of `model` as it is ("full") and with each modality's input replaced by its mean
    item feature ("replaced": {modality: ..., "all": every modality at once}), the paper's Figure 1.
    The drop from "full" is what that modality's item-specific content contributes."""
    def scores() -> dict[str, float]:
        values = evaluator.evaluate(model)[split]
        return {name: values[name] for name in metrics}

    modalities = model.modalities()
    replaced = {}
    for name in modalities:
        with mean_feature(model, name):
            replaced[name] = scores()
    if len(modalities) > 1:
        with contextlib.ExitStack() as stack:
            for name in modalities:
                stack.enter_context(mean_feature(model, name))
            replaced["all"] = scores()
    return {"split": split, "modalities": modalities, "full": scores(), "replaced": replaced}


def evaluate(model: Recommender, data: TrainData, device: torch.device | str = "cpu",
             batch_size: int = 4096) -> dict[str, dict[str, float]]:
    """One-off evaluation of `model` on every held-out split of `data` (see Evaluator)."""
    return Evaluator(data, torch.device(device), batch_size).evaluate(model)
