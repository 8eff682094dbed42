"""Contrastive loss shared by the models (BPR lives in viral.models.base)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float, ids: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE between two views of the same n rows (CLIP style).

    Rows are L2-normalised; row i of `a` and row i of `b` are the positive pair, the other rows of the
    other view are negatives. Returns the mean of the a->b and b->a cross-entropies.
    With `ids` (n,), rows sharing an id are copies of one entity (an item drawn twice in a batch) and the
    result equals the loss over the distinct ids: each id is a negative once, and each row's loss is
    weighted by 1/copies. This avoids a device-syncing `unique()`.
    """
    a = F.normalize(a, dim=-1)
    b = F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    target = torch.arange(len(a), device=a.device)
    if ids is None:
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
    same = ids[:, None] == ids[None, :]
    first = ~(same & (target[None, :] < target[:, None])).any(1)  # the first row of each id
    keep = (first[None, :] & ~same) | (target[:, None] == target[None, :])
    weights = 1.0 / same.sum(1)
    rows = F.cross_entropy(logits.masked_fill(~keep, float("-inf")), target, reduction="none")
    cols = F.cross_entropy(logits.T.masked_fill(~keep, float("-inf")), target, reduction="none")
    return ((rows + cols) * weights).sum() / (2 * weights.sum())


def in_batch_nce(queries: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """One-directional InfoNCE with in-batch negatives: row i of `queries` should pick row i of `keys`
    among all the batch's keys (cross-entropy over queries @ keys.T / temperature). No normalisation
    here: SLMRec scores its main loss on L2-normalised rows and its FAC heads on raw dot products."""
    logits = queries @ keys.T / temperature
    return F.cross_entropy(logits, torch.arange(len(queries), device=queries.device))
