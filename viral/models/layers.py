"""Graph building blocks: the DRAGON-style per-modality user-item GCN and homogeneous propagation."""
from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from viral.graphs.user_item import interaction_matrix
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


def bipartite_pattern(pairs: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """The user-item graph as a binary (n_users + n_items) square CSR, users first, both directions,
    each pair once, sorted indices. Row = the receiving node, column = the sending one."""
    r = interaction_matrix(pairs, n_users, n_items)
    pattern = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    pattern.sort_indices()
    return pattern


def mean_adjacency(pairs: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """Row-normalised user-item graph: `A @ x` is the mean of each node's neighbours (PyG's "mean"
    aggregation); a node without train edges gets a zero row."""
    pattern = bipartite_pattern(pairs, n_users, n_items)
    degree = np.diff(pattern.indptr)
    pattern.data = np.repeat(1.0 / np.maximum(degree, 1), degree).astype(np.float32)
    return pattern


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():  # torch warns that its CSR layout is "beta" on every construction
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def _sampled_dot(graph: "EdgeGraph", a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(E,) values a[t] . b[s] on the pattern, without gathering (E, d) copies of a and b."""
    zeros = torch.zeros(len(graph.col), dtype=a.dtype, device=a.device)
    return torch.sparse.sampled_addmm(graph.csr(zeros), a, b.T, beta=0.0).values()


class _EdgeScores(torch.autograd.Function):
    """Per edge t <- s: receivers[t] . senders[s]."""

    @staticmethod
    def forward(ctx, graph: "EdgeGraph", receivers: torch.Tensor, senders: torch.Tensor) -> torch.Tensor:
        ctx.graph = graph
        ctx.save_for_backward(receivers, senders)
        return _sampled_dot(graph, receivers, senders)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        receivers, senders = ctx.saved_tensors
        graph = ctx.graph
        grad_receivers = graph.csr(grad) @ senders if ctx.needs_input_grad[1] else None
        grad_senders = graph.csr_t(grad) @ receivers if ctx.needs_input_grad[2] else None
        return None, grad_receivers, grad_senders


class _EdgePropagate(torch.autograd.Function):
    """out[t] = sum over edges t <- s of w_e x[s]: a sparse product whose values (edge weights) and
    input both take gradients."""

    @staticmethod
    def forward(ctx, graph: "EdgeGraph", weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.graph = graph
        ctx.save_for_backward(weights, x)
        return graph.csr(weights) @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        weights, x = ctx.saved_tensors
        graph = ctx.graph
        grad_weights = _sampled_dot(graph, grad, x) if ctx.needs_input_grad[1] else None  # grad[t] . x[s]
        grad_x = graph.csr_t(weights) @ grad if ctx.needs_input_grad[2] else None
        return None, grad_weights, grad_x


class EdgeGraph(nn.Module):
    """A fixed sparsity pattern whose edge weights the model computes in every forward (attention,
    pruning), e.g. GRCN's refined user-item graph. Row t receives, column s sends: edge t <- s.

    Edges are numbered in CSR order of `pattern`. Every operation is a sparse product over the pattern
    or its transpose (no (E, d) gathers, no Python loop), with hand-written backward passes; the
    per-edge gathers use index_select, whose backward (index_add_) is deterministic on CPU.
    """

    def __init__(self, pattern: sp.spmatrix) -> None:
        super().__init__()
        pattern = sp.csr_matrix(pattern, dtype=np.float32)
        pattern.sort_indices()
        numbered = sp.csr_matrix((np.arange(pattern.nnz, dtype=np.float64), pattern.indices, pattern.indptr),
                                 shape=pattern.shape)
        transposed = numbered.T.tocsr()
        transposed.sort_indices()
        self.shape = pattern.shape
        for name, values in (("crow", pattern.indptr), ("col", pattern.indices),
                             ("row", np.repeat(np.arange(self.shape[0]), np.diff(pattern.indptr))),
                             ("crow_t", transposed.indptr), ("col_t", transposed.indices),
                             ("transpose", transposed.data)):  # the edge number of each entry of the transpose
            self.register_buffer(name, torch.from_numpy(values.astype(np.int64)), persistent=False)

    def csr(self, values: torch.Tensor) -> torch.Tensor:
        """The sparse matrix with these per-edge values."""
        return _csr(self.crow, self.col, values, self.shape)

    def csr_t(self, values: torch.Tensor) -> torch.Tensor:
        """The transpose of `csr(values)`."""
        return _csr(self.crow_t, self.col_t, values.index_select(0, self.transpose), self.shape[::-1])

    def scores(self, receivers: torch.Tensor, senders: torch.Tensor) -> torch.Tensor:
        """(E,) dot products receivers[t] . senders[s] of every edge's two ends."""
        return _EdgeScores.apply(self, receivers, senders)

    def softmax(self, scores: torch.Tensor) -> torch.Tensor:
        """Softmax of per-edge scores over each receiving node's edges (PyG's `softmax`)."""
        n = self.shape[0]
        shift = scores.detach().new_full((n,), float("-inf")).scatter_reduce(0, self.row, scores.detach(), "amax")
        exp = torch.exp(scores - shift.index_select(0, self.row))
        total = exp.new_zeros(n).index_add(0, self.row, exp)
        return exp / total.index_select(0, self.row)

    def propagate(self, weights: torch.Tensor, senders: torch.Tensor) -> torch.Tensor:
        """(n_rows, d): out[t] = sum over edges t <- s of weights[e] * senders[s]."""
        return _EdgePropagate.apply(self, weights, senders)
