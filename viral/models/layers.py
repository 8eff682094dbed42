"""Graph building blocks: the DRAGON-style per-modality user-item GCNs and homogeneous propagation."""
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


class FeatureMLP(nn.Module):
    """DRAGON's item feature encoder: Linear(in -> hidden), leaky ReLU, Linear(hidden -> out)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.out(F.leaky_relu(self.hidden(features)))


class SlotMLPs(nn.ModuleList):
    """One FeatureMLP per slot; maps the slots' item inputs to their (n_items, S * out) concatenation."""

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([mlp(x) for mlp, x in zip(self, inputs)], dim=1)


class SlotGCN(nn.Module):
    """S per-modality user-item GCNs (VIRAL eqs. 1-2, DRAGON's per-modality encoder), propagated as one.

    Slot s's items enter through its own FeatureMLP (in_dims[s] -> hidden -> out, leaky ReLU), its
    users through its own free preference table: columns [s*out, (s+1)*out) of `preference`. Every
    node row is L2-normalised per slot, then the (n_users + n_items, S * out) matrix is propagated L
    hops on the sym-normalised bipartite graph and summed over layers: one sparse product per hop for
    all slots, identical to S separate GCNs. Output rows: users first, then items.
    """

    def __init__(self, n_users: int, in_dims: list[int], hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.n_slots, self.out_dim = len(in_dims), out_dim
        self.preference = nn.Parameter(torch.empty(n_users, len(in_dims) * out_dim))
        for block in self.preference.data.split(out_dim, dim=1):  # Xavier-normal per slot's table
            nn.init.xavier_normal_(block)
        self.mlps = SlotMLPs(FeatureMLP(in_dim, hidden_dim, out_dim) for in_dim in in_dims)

    def forward(self, inputs: list[torch.Tensor], adj: torch.Tensor, n_layers: int) -> torch.Tensor:
        x = torch.cat([self.preference, self.mlps(inputs)])
        x = F.normalize(x.view(len(x), self.n_slots, self.out_dim), dim=-1).view(len(x), -1)
        return layer_sum(adj, x, n_layers)
