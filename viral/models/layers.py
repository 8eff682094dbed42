"""Graph building blocks: the DRAGON-style per-modality user-item GCN and homogeneous propagation."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from viral.models.base import spmm

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
