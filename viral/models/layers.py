"""Graph building blocks: the DRAGON-style per-modality user-item GCN and homogeneous propagation."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from viral.models.base import rows, spmm

HomoCombine = Literal["last", "sum", "mean"]


def layer_sum(adj: torch.Tensor, x: torch.Tensor, n_layers: int) -> torch.Tensor:
    """x + A x + A^2 x + ... + A^L x for a symmetric CSR `adj` (eq. 2: the sum over layers 0..L)."""
    total, h = x, x
    for _ in range(n_layers):
        h = spmm(adj, h)
        total = total + h
    return total


def homogeneous(
    adj: torch.Tensor, adj_t: torch.Tensor, x: torch.Tensor, n_layers: int, combine: HomoCombine
) -> torch.Tensor:
    """Propagate `x` over an item-item or user-user CSR graph (transpose `adj_t`, as these graphs are
    not symmetric) and add the residual fused signal (eq. 3).

    last: x + A^L x (DRAGON adds only the last hop); sum: x + sum_l A^l x; mean: (x + sum_l A^l x)/(L+1).
    """
    hops = []
    h = x
    for _ in range(n_layers):
        h = spmm(adj, h, adj_t)
        hops.append(h)
    if not hops:
        return x
    if combine == "last":
        return x + hops[-1]
    total = x + torch.stack(hops).sum(0)
    return total if combine == "sum" else total / (n_layers + 1)


class ModalityGCN(nn.Module):
    """One modality's user-item GCN (VIRAL eqs. 1-2, DRAGON's per-modality encoder).

    Items enter through MLP(in -> hidden -> out, leaky ReLU); users through a free preference table.
    All node rows are L2-normalised, then propagated L hops on the sym-normalised bipartite graph and
    summed over layers. Output rows: users first, then items.
    """

    def __init__(self, n_users: int, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.preference = nn.Parameter(torch.empty(n_users, out_dim))
        nn.init.xavier_normal_(self.preference)
        self.hidden = nn.Linear(in_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, out_dim)

    def forward(self, item_features: torch.Tensor, adj: torch.Tensor, n_layers: int) -> torch.Tensor:
        items = self.out(F.leaky_relu(self.hidden(item_features)))
        x = F.normalize(torch.cat([self.preference, items]), dim=1)
        return layer_sum(adj, x, n_layers)


def neighbour_sum(x: torch.Tensor, columns: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """out[i] = sum_j weights[i, j] * x[columns[i, j]]: propagation over a graph given as a fixed number
    of weighted neighbours per row (a kNN graph), differentiable in both `x` and the edge `weights`
    (e.g. similarities of learned features), with deterministic gathers (`rows`)."""
    return (rows(x, columns) * weights.unsqueeze(-1)).sum(1)


def knn_columns(x: torch.Tensor, k: int, chunk_rows: int = 1024) -> torch.Tensor:
    """Column ids of the k largest entries of every row of x @ x.T, (n, min(k, n)) on x's device: for
    unit-norm rows, each item's k nearest items by cosine, itself included.

    For models that rebuild a kNN graph from learned features while training: the selection runs under
    no_grad, `chunk_rows` rows of similarities at a time, so only a (chunk_rows, n) tile ever exists.
    Ties are broken by torch.topk (repeatable on one device; the graphs stage's `viral.graphs.topk`
    orders ties by column id on every platform, on the CPU).
    """
    n = x.shape[0]
    k = min(k, n)
    with torch.no_grad():
        features = x.detach()
        parts = [torch.topk(features[start : start + chunk_rows] @ features.T, k, dim=1, sorted=False).indices
                 for start in range(0, n, chunk_rows)]
    return torch.cat(parts) if parts else torch.zeros(0, k, dtype=torch.long, device=x.device)
