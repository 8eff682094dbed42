"""Contrastive loss shared by the models (BPR lives in viral.models.base)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float, ids: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE between two views of the same n rows (CLIP style).

    Rows are L2-normalised; row i of `a` and row i of `b` are the positive pair, the other rows of the
    other view are negatives. `ids` (n,) marks rows that are the same entity (an item drawn twice in a
    batch): such pairs are dropped from the negatives, which avoids a device-syncing `unique()`.
    Returns the mean of the a->b and b->a cross-entropies.
    """
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    if ids is not None:
        duplicate = (ids[:, None] == ids[None, :]) & (target[:, None] != target[None, :])
        logits = logits.masked_fill(duplicate, float("-inf"))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
