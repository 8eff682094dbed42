"""Top-K ranking metrics exactly as MMRec defines them (model-spec §2.3), on hit matrices.

`hits[u, r]` is 1 when the item ranked r+1 for user u is relevant. Per user, with P = |relevant|:
Recall@K = hits@K / P (not min(P, K)); Precision@K = hits@K / K; NDCG@K = DCG@K / IDCG@K with gain
1/log2(rank+1) and IDCG over min(P, K) ranks; MAP@K = sum_{r<=K} Precision@r * rel_r / min(P, K).
A ranking shorter than K (K larger than the catalog) counts its missing ranks as misses.
"""
from __future__ import annotations

import torch

TOPK = (5, 10, 20, 50)
METRICS = ("recall", "ndcg", "precision", "map")


def metric_names(ks: tuple[int, ...] = TOPK) -> list[str]:
    return [f"{metric}@{k}" for metric in METRICS for k in ks]


def user_metrics(hits: torch.Tensor, n_relevant: torch.Tensor, ks: tuple[int, ...] = TOPK) -> dict[str, torch.Tensor]:
    """Each metric of each user (row) of `hits` (B, R), float64 (B,): per-user results and their sums."""
    hits = hits.to(torch.float64)
    n_relevant = n_relevant.to(torch.float64)
    length = hits.shape[1]
    ranks = torch.arange(1, length + 1, dtype=torch.float64, device=hits.device)
    discount = 1.0 / torch.log2(ranks + 1.0)
    cum_hits = hits.cumsum(1)
    cum_dcg = (hits * discount).cumsum(1)
    ideal = discount.cumsum(0)
    cum_ap = (cum_hits / ranks * hits).cumsum(1)
    values = {}
    for k in ks:
        last = min(k, length) - 1
        denominator = torch.clamp(n_relevant, max=k)
        ideal_dcg = ideal[(denominator.long() - 1).clamp(max=length - 1)]
        values[f"recall@{k}"] = cum_hits[:, last] / n_relevant
        values[f"ndcg@{k}"] = cum_dcg[:, last] / ideal_dcg
        values[f"precision@{k}"] = cum_hits[:, last] / k
        values[f"map@{k}"] = cum_ap[:, last] / denominator
    return {name: values[name] for name in metric_names(ks)}


def metric_sums(hits: torch.Tensor, n_relevant: torch.Tensor, ks: tuple[int, ...] = TOPK) -> dict[str, torch.Tensor]:
    """Per-metric SUMS over the users (rows) of `hits` (B, R) in float64, so that batches add up."""
    return {name: values.sum() for name, values in user_metrics(hits, n_relevant, ks).items()}


def mean_metrics(sums: dict[str, torch.Tensor], n_users: int, decimals: int = 4) -> dict[str, float]:
    """Average the summed metrics over the evaluated users, rounded as MMRec reports (and compares) them."""
    return {name: round(float(total) / n_users, decimals) for name, total in sums.items()}
