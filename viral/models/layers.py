"""Graph building blocks: the DRAGON-style per-modality user-item GCNs, homogeneous propagation, and the
baselines' shared graph blocks."""
from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from viral.graphs.topk import top_k_counts
from viral.graphs.user_item import interaction_matrix, normalized_adjacency
from viral.graphs.user_user import sample_user_graph
from viral.models.base import csr_matmul, csr_tensor, rows, sparse_csr, spmm, unit_rows

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
        x = unit_rows(x.view(len(x), self.n_slots, self.out_dim)).view(len(x), -1)
        return layer_sum(adj, x, n_layers)


class ModalityGCN(nn.Module):
    """One modality's user-item GCN (DRAGON's per-modality encoder; MENTOR and COHESION build on it).

    Items enter through a FeatureMLP (`mlp`, the dense block `train.precision` may run in bf16); users
    through a free preference table. All node rows are L2-normalised, then propagated L hops on the
    sym-normalised bipartite graph and summed over layers. Output rows: users first, then items. (VIRAL
    runs its slots' GCNs as one `SlotGCN`.)
    """

    def __init__(self, n_users: int, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = FeatureMLP(in_dim, hidden_dim, out_dim)
        self.preference = nn.Parameter(torch.empty(n_users, out_dim))
        nn.init.xavier_normal_(self.preference)

    def project(self, item_features: torch.Tensor) -> torch.Tensor:
        """The items' input: the FeatureMLP of their features."""
        return self.mlp(item_features)

    def ego(self, item_features: torch.Tensor) -> torch.Tensor:
        """Layer 0: the L2-normalised rows of [user preferences; projected items]."""
        return unit_rows(torch.cat([self.preference, self.project(item_features)]))

    def forward(self, item_features: torch.Tensor, adj: torch.Tensor, n_layers: int) -> torch.Tensor:
        return layer_sum(adj, self.ego(item_features), n_layers)


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


# --- DRAGON's fusion and user-graph blocks (also the backbone of MENTOR and COHESION), and FREEDOM's
# degree-sensitive pruning.


def modality_weights(n_users: int, n_slots: int) -> nn.Parameter:
    """DRAGON's per-user modality weights: Xavier-normal (n_users, n_slots), softmaxed over the slots
    once at initialisation, then trained freely (and L2-regularised by the model's loss)."""
    weights = torch.empty(n_users, n_slots)
    nn.init.xavier_normal_(weights)
    return nn.Parameter(weights.softmax(dim=1))


def weighted_concat(parts: list[torch.Tensor], weights: torch.Tensor | None = None) -> torch.Tensor:
    """DRAGON's attentive concatenation: [w_0 x_0 || w_1 x_1 || ...] with one weight per row and slot
    (`weights` (n, len(parts))); plain concatenation without weights (DRAGON's item side)."""
    if weights is not None:
        parts = [weights[:, k : k + 1] * part for k, part in enumerate(parts)]
    return torch.cat(parts, dim=1)


class SampledUserGraph(nn.Module):
    """DRAGON's user-user graph, redrawn every epoch from the co-interaction lists (`uu_counts`): each
    user's k best co-users, a shorter list padded to k slots by re-picking its own slots at random,
    weights = softmax of the counts over the slots (`viral.graphs.user_user.sample_user_graph`).

    The current draw is kept as persistent (n_users, k) buffers, row u = u's distinct neighbours and
    their summed slot weights (padding: neighbour 0, weight 0), so a saved or best-epoch state carries
    the user graph it was evaluated with; the sparse operator and its transpose are rebuilt on the
    buffers' device after every draw and every `load_state_dict`.
    """

    def __init__(self, counts, k: int, rng: np.random.Generator) -> None:
        super().__init__()
        coo = counts.tocoo()
        best = top_k_counts(coo.row.astype(np.int64), coo.col.astype(np.int64), np.rint(coo.data).astype(np.int64), k)
        # The top-k of every list, once: each draw then sorts k entries per user instead of all of them.
        self.lists = sp.csr_matrix((best.values.astype(np.float32), (best.rows, best.cols)), shape=counts.shape)
        self.k = k
        n_users = counts.shape[0]
        self.register_buffer("neighbours", torch.zeros(n_users, k, dtype=torch.int64))
        self.register_buffer("weights", torch.zeros(n_users, k))
        self.register_buffer("adjacency", None, persistent=False)
        self.register_buffer("adjacency_t", None, persistent=False)
        self.register_load_state_dict_post_hook(SampledUserGraph._after_load)
        self.resample(rng)

    def resample(self, rng: np.random.Generator) -> None:
        """Draw this epoch's graph (all randomness from `rng`)."""
        graph = sample_user_graph(self.lists, self.k, rng)
        users = np.repeat(np.arange(graph.shape[0]), np.diff(graph.indptr))
        slots = np.arange(graph.nnz) - graph.indptr[users]
        neighbours = np.zeros(tuple(self.neighbours.shape), dtype=np.int64)
        weights = np.zeros(tuple(self.weights.shape), dtype=np.float32)
        neighbours[users, slots] = graph.indices
        weights[users, slots] = graph.data
        self.neighbours.copy_(torch.from_numpy(neighbours))
        self.weights.copy_(torch.from_numpy(weights))
        self.rebuild()

    @staticmethod
    def _after_load(module: "SampledUserGraph", incompatible_keys) -> None:
        module.rebuild()

    def rebuild(self) -> None:
        """The CSR operator of the current buffers (duplicate padding entries summed away)."""
        n_users, k = self.neighbours.shape
        users = torch.arange(n_users, device=self.neighbours.device).repeat_interleave(k)
        neighbours, weights = self.neighbours.reshape(-1), self.weights.reshape(-1)
        shape = (n_users, n_users)
        for name, index in (("adjacency", (users, neighbours)), ("adjacency_t", (neighbours, users))):
            coo = torch.sparse_coo_tensor(torch.stack(index), weights, shape, check_invariants=False).coalesce()
            setattr(self, name, coo.to_sparse_csr())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """h_u = sum_j alpha_uj x_j over u's sampled neighbours (one layer, no residual)."""
        return spmm(self.adjacency, x, self.adjacency_t)


def weighted_sample_without_replacement(weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of k distinct draws, each drawn with probability proportional to its weight among those
    not yet drawn (torch.multinomial without replacement), as one vectorised step: the k smallest
    exponential keys E_i / w_i (Efraimidis-Spirakis; equivalently the Gumbel-top-k trick). Sorted."""
    if not 0 <= k <= len(weights):
        raise ValueError(f"cannot draw {k} distinct items from {len(weights)}")
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    keys = rng.standard_exponential(len(weights)) / weights
    return np.sort(np.argpartition(keys, k - 1)[:k])


def degree_sensitive_pruning(pairs: np.ndarray, n_users: int, n_items: int, keep: int,
                             rng: np.random.Generator) -> sp.csr_matrix:
    """FREEDOM's denoised user-item graph: `keep` of the (user, item) train edges drawn without
    replacement with probability proportional to 1/sqrt(d_u d_i) (degrees of the full graph), then the
    kept subgraph re-normalised symmetrically, 1/sqrt(d'_u d'_i). (n_users + n_items) square, users first."""
    users, items = pairs[:, 0], pairs[:, 1]
    degree_u = np.bincount(users, minlength=n_users).astype(np.float64)
    degree_i = np.bincount(items, minlength=n_items).astype(np.float64)
    kept = weighted_sample_without_replacement(1.0 / np.sqrt(degree_u[users] * degree_i[items]), keep, rng)
    return normalized_adjacency(pairs[kept], n_users, n_items)


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
        grad_receivers = csr_matmul(graph.csr(grad), senders) if ctx.needs_input_grad[1] else None
        grad_senders = csr_matmul(graph.csr_t(grad), receivers) if ctx.needs_input_grad[2] else None
        return None, grad_receivers, grad_senders


class _EdgePropagate(torch.autograd.Function):
    """out[t] = sum over edges t <- s of w_e x[s]: a sparse product whose values (edge weights) and
    input both take gradients."""

    @staticmethod
    def forward(ctx, graph: "EdgeGraph", weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.graph = graph
        ctx.save_for_backward(weights, x)
        return csr_matmul(graph.csr(weights), x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        weights, x = ctx.saved_tensors
        graph = ctx.graph
        grad_weights = _sampled_dot(graph, grad, x) if ctx.needs_input_grad[1] else None  # grad[t] . x[s]
        grad_x = csr_matmul(graph.csr_t(weights), grad) if ctx.needs_input_grad[2] else None
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
        return csr_tensor(self.crow, self.col, values, self.shape)

    def csr_t(self, values: torch.Tensor) -> torch.Tensor:
        """The transpose of `csr(values)`."""
        return csr_tensor(self.crow_t, self.col_t, values.index_select(0, self.transpose), self.shape[::-1])

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


class ItemItemGraph(nn.Module):
    """A frozen item-item graph (e.g. `ii_dragon`, DRAGON's mm_adj, which MENTOR and COHESION reuse) applied
    with DRAGON's residual: z = x + A^L x. The graph and its transpose are non-persistent CSR buffers."""

    def __init__(self, matrix, n_layers: int) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.register_buffer("adjacency", sparse_csr(matrix), persistent=False)
        self.register_buffer("adjacency_t", sparse_csr(matrix.T), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return homogeneous(self.adjacency, self.adjacency_t, x, self.n_layers, "last")
