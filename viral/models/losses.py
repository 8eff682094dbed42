"""Contrastive loss shared by the models (BPR lives in viral.models.base)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


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


def one_way_info_nce(anchors: torch.Tensor, candidates: torch.Tensor, temperature: float,
                     chunk_rows: int = 0, normalize: bool = True) -> torch.Tensor:
    """One-directional InfoNCE (SimGCL's, MENTOR's, SLMRec's in-batch loss): the mean over rows i of
    logsumexp_j(a_i . b_j / t) - a_i . b_i / t, rows L2-normalised unless `normalize` is false (SLMRec's
    FAC heads score raw dot products); every row of `candidates` is a candidate for every anchor, the
    same row being the positive.

    `chunk_rows` > 0 bounds memory: the log-sum-exp is taken over blocks of that many anchors, and each
    block's (rows x n) logits are recomputed in the backward pass instead of kept (checkpointing), so
    the value and gradients are the dense ones while at most one block of logits is held at a time.
    0 = one dense (n x n) product, as MMRec-style code computes it.
    """
    a = F.normalize(anchors, dim=-1) if normalize else anchors
    b = F.normalize(candidates, dim=-1) if normalize else candidates
    positives = (a * b).sum(-1) / temperature
    if chunk_rows == 0 or chunk_rows >= len(a):
        normalisers = _block_logsumexp(a, b, temperature)
    else:
        normalisers = torch.cat([
            checkpoint(_block_logsumexp, block, b, temperature, use_reentrant=False, preserve_rng_state=False)
            for block in a.split(chunk_rows)
        ])
    return (normalisers - positives).mean()


def _block_logsumexp(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.logsumexp(a @ b.T / temperature, dim=1)
