"""Transformer blocks of VIRAL's information-aware fusion: synergy (CSE) and redundancy (TBR).

Attention kernels (all compute exact softmax attention):
- `full_attention`: every query attends to every key. On CPU it runs chunked over the queries with the
  probabilities recomputed in the backward pass, so memory stays O(chunk x keys) instead of the
  O(queries x keys) probability matrix autograd would keep (2 GB per block for a 23k-item catalogue);
  elsewhere it is PyTorch's fused scaled-dot-product attention (flash / memory-efficient kernels).
- `neighbour_attention`: each query attends only to the keys its row of a padded index lists.
- The TBR's 2-token sequences are scored directly from the 2N+2 distinct token projections.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

QUERY_CHUNK = 256  # queries per block of the CPU attention: 256 x 7,050 keys x 4 B = 7 MB per buffer


class GroupedLinear(nn.Module):
    """`groups` independent Linear layers applied at once to a (groups, rows, in_dim) input (one bmm)."""

    def __init__(self, groups: int, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(groups, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(groups, 1, out_dim))
        for weight in self.weight:  # Xavier-normal per group, as an nn.Linear of that shape
            nn.init.xavier_normal_(weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class GroupedLayerNorm(nn.Module):
    """`groups` independent LayerNorms over the last dim of a (groups, rows, width) input."""

    def __init__(self, groups: int, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(groups, 1, width))
        self.bias = nn.Parameter(torch.zeros(groups, 1, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias, F.layer_norm(x, x.shape[-1:]), self.weight)


class AttentionBlocks(nn.Module):
    """`groups` independent post-LayerNorm transformer layers (multi-head attention of the query over the
    context, then a GELU FFN), computed together: inputs and outputs are (groups, rows, width)."""

    def __init__(self, groups: int, width: int, heads: int, ffn_mult: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"attention width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.query = GroupedLinear(groups, width, width)
        self.key = GroupedLinear(groups, width, width)
        self.value = GroupedLinear(groups, width, width)
        self.out = GroupedLinear(groups, width, width)
        self.norm_attn = GroupedLayerNorm(groups, width)
        self.norm_ffn = GroupedLayerNorm(groups, width)
        self.ffn_in = GroupedLinear(groups, width, ffn_mult * width)
        self.ffn_out = GroupedLinear(groups, ffn_mult * width, width)

    def forward(self, query: torch.Tensor, context: torch.Tensor, neighbours: torch.Tensor | None = None):
        """`neighbours` None: every query row attends to every context row; else (rows, k) context row
        ids per query row (-1 = padding)."""
        q, k, v = self.split_heads(self.query(query)), self.split_heads(self.key(context)), self.split_heads(self.value(context))
        attended = full_attention(q, k, v) if neighbours is None else neighbour_attention(q, k, v, neighbours)
        return self.finish(query, self.merge_heads(attended, len(query)))

    def finish(self, residual: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        """Output projection, residual + LayerNorm, FFN, residual + LayerNorm."""
        x = self.norm_attn(residual + self.out(attended))
        return self.norm_ffn(x + self.ffn_out(F.gelu(self.ffn_in(x))))

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(G, rows, width) -> (G * heads, rows, width / heads)."""
        groups, length, width = x.shape
        if self.heads == 1:
            return x
        return x.view(groups, length, self.heads, -1).transpose(1, 2).reshape(groups * self.heads, length, -1)

    def merge_heads(self, x: torch.Tensor, groups: int) -> torch.Tensor:
        if self.heads == 1:
            return x
        _, length, head_width = x.shape
        return x.view(groups, self.heads, length, head_width).transpose(1, 2).reshape(groups, length, -1)


def full_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v for (B, S, d) queries and (B, T, d) keys and values."""
    if q.device.type == "cpu":
        return _chunked_attention(q, k, v)
    # The fused kernels (flash, memory-efficient) take (batch, heads, length, dim) only; 3-d inputs would
    # fall back to the math kernel and its (S, T) matrix.
    return F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]


@torch.compiler.disable  # a Python loop over chunks: kept out of torch.compile graphs
def _chunked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return _ChunkedAttention.apply(q, k, v)


def _wide(dtype: torch.dtype) -> torch.dtype:
    """The precision softmaxes and sums run in: fp32, or the input's if wider."""
    return torch.promote_types(dtype, torch.float32)


def _probabilities(q: torch.Tensor, k_t: torch.Tensor, scale: float) -> torch.Tensor:
    """Softmax attention weights of a block of (already chunked) queries."""
    scores = torch.bmm(q * scale, k_t)
    return torch.softmax(scores.to(_wide(q.dtype)), dim=-1).to(q.dtype)


def _accumulate(total: torch.Tensor, a: torch.Tensor, b: torch.Tensor, alpha: float = 1.0) -> None:
    """total += alpha * a @ b, accumulating in `total`'s (wide) precision."""
    if total.dtype == a.dtype:
        total.baddbmm_(a, b, alpha=alpha)
    else:
        total.add_(torch.bmm(a, b), alpha=alpha)


class _ChunkedAttention(torch.autograd.Function):
    """Exact attention in blocks of QUERY_CHUNK queries; the backward recomputes each block's
    probabilities (flash-attention style), so no (S, T) matrix is ever stored. On CPU this is also
    faster than PyTorch's math kernel: each block's scores stay in cache between the matrix products."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        with torch.autocast(q.device.type, enabled=False):
            scale = q.shape[-1] ** -0.5
            k_t = k.transpose(1, 2)
            out = torch.cat([torch.bmm(_probabilities(q[:, start : start + QUERY_CHUNK], k_t, scale), v)
                             for start in range(0, q.shape[1], QUERY_CHUNK)], dim=1)
        ctx.save_for_backward(q, k, v, out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        q, k, v, out = ctx.saved_tensors
        with torch.autocast(q.device.type, enabled=False):
            grad = grad.to(q.dtype)
            scale = q.shape[-1] ** -0.5
            k_t, v_t = k.transpose(1, 2), v.transpose(1, 2)
            # d softmax: dS = P * (dP - rowsum(P * dP)) and rowsum(P * dP) = rowsum(dO * O).
            wide = _wide(q.dtype)
            delta = (grad.to(wide) * out.to(wide)).sum(-1, keepdim=True)
            grad_k = torch.zeros(k.shape, dtype=wide, device=k.device)
            grad_v = torch.zeros(v.shape, dtype=wide, device=v.device)
            grad_q = []
            for start in range(0, q.shape[1], QUERY_CHUNK):
                block = slice(start, start + QUERY_CHUNK)
                q_block, grad_block = q[:, block], grad[:, block]
                p = _probabilities(q_block, k_t, scale)
                _accumulate(grad_v, p.transpose(1, 2), grad_block)
                ds = torch.bmm(grad_block, v_t).to(wide).sub_(delta[:, block]).mul_(p).to(q.dtype)
                grad_q.append(torch.bmm(ds, k) * scale)
                _accumulate(grad_k, ds.transpose(1, 2), q_block, alpha=scale)
        return torch.cat(grad_q, dim=1), grad_k.to(k.dtype), grad_v.to(v.dtype)


def neighbour_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """Row i of the (B, N, d) queries attends to the key/value rows listed in neighbours[i] (-1 = padding,
    masked out). Keys and values are projected before the gather, so the cost is O(N k d); one gather per
    neighbour slot keeps every temporary at (B, N, d) (3x faster on CPU than one (B, N, k, d) gather)."""
    columns = neighbours.clamp(min=0).T.contiguous()
    # index_select (backward: index_add_) is much faster on CPU than advanced indexing's index_put_.
    scores = torch.stack([(q * k.index_select(1, column)).sum(-1) for column in columns], dim=-1)
    scores = scores.to(_wide(q.dtype)) * q.shape[-1] ** -0.5
    p = scores.masked_fill(neighbours < 0, float("-inf")).softmax(-1).to(q.dtype)
    return sum(p[..., slot, None] * v.index_select(1, column) for slot, column in enumerate(columns))


def neighbour_index(graph: sp.csr_matrix) -> torch.Tensor:
    """(N, k_max) int64 column ids of each row's non-zeros plus the row itself, padded with -1.

    Used by the scalable synergy mode: item i attends to itself and its item-item kNN neighbours.
    """
    graph = sp.csr_matrix(graph)
    graph = (graph + sp.identity(graph.shape[0], format="csr", dtype=graph.dtype)).tocsr()
    graph.sort_indices()
    lengths = np.diff(graph.indptr)
    index = np.full((graph.shape[0], int(lengths.max(initial=1))), -1, dtype=np.int64)
    rows = np.repeat(np.arange(graph.shape[0]), lengths)
    slots = np.arange(len(graph.indices)) - np.repeat(graph.indptr[:-1], lengths)
    index[rows, slots] = graph.indices
    return torch.from_numpy(index)


class SynergyEstimator(nn.Module):
    """Cross-modal synergy estimation (CSE, eqs. 7-8) over item features of width w.

    h_{v->t}: visual queries attend to text keys, then a self-attention layer; h_{t->v} symmetrically.
    The two directions have their own weights and run batched (group 0: v->t, group 1: t->v). The
    sequence is the item set (the authors' layout): with `neighbours` None every item attends to all
    items (O(N^2), faithful); otherwise only to the items listed in its row of `neighbours`.
    """

    def __init__(self, width: int, heads: int, ffn_mult: int) -> None:
        super().__init__()
        self.cross = AttentionBlocks(2, width, heads, ffn_mult)
        self.own = AttentionBlocks(2, width, heads, ffn_mult)

    def forward(self, visual: torch.Tensor, text: torch.Tensor, neighbours: torch.Tensor | None = None):
        """(h_vt, h_tv), each (N, w)."""
        x = self.cross(torch.stack([visual, text]), torch.stack([text, visual]), neighbours)
        h = self.own(x, x, neighbours)
        return h[0], h[1]


class RedundancyEstimator(nn.Module):
    """Transformer-based redundancy estimation (TBR, eqs. 9-11).

    Each item is a 2-token sequence [v, t] (+ learned modality-type embeddings so the encoder can tell
    the slots apart); [MASK] tokens are learned vectors that replace a modality. One shared encoder F
    over the three sequences [v, t], [v, MASK_t], [MASK_v, t]; mean pooling over the 2 tokens; linear
    projection g from the attention width to `out_width` (the visual feature width, so that r lives in
    v's space for eq. 12). Returns (h, h_v, h_t), each (N, out_width).

    The three sequences hold only 2N + 2 distinct tokens (N visual, N text, 2 masks): their query, key and
    value projections are computed once and each sequence's 2x2 attention is scored from them.
    """

    def __init__(self, width: int, heads: int, ffn_mult: int, out_width: int) -> None:
        super().__init__()
        self.encoder = AttentionBlocks(1, width, heads, ffn_mult)
        self.project = nn.Linear(width, out_width)
        self.mask_tokens = nn.Parameter(torch.empty(2, width))  # [MASK_v, MASK_t]
        self.type_embeddings = nn.Parameter(torch.empty(2, width))  # [visual, text]
        nn.init.normal_(self.mask_tokens, std=0.02)
        nn.init.normal_(self.type_embeddings, std=0.02)

    def forward(self, visual: torch.Tensor, text: torch.Tensor):
        n = len(visual)
        tokens = torch.cat([visual + self.type_embeddings[0], text + self.type_embeddings[1],
                            self.mask_tokens + self.type_embeddings])[None]  # rows: v_i, t_i, MASK_v, MASK_t
        encoder = self.encoder
        q, k, v = (encoder.split_heads(layer(tokens)) for layer in (encoder.query, encoder.key, encoder.value))
        items = torch.arange(n, device=visual.device)
        # The sequences [v_i, t_i], [v_i, MASK_t], [MASK_v, t_i], as row ids into `tokens`.
        first = torch.cat([items, items, torch.full_like(items, 2 * n)])
        second = torch.cat([items + n, torch.full_like(items, 2 * n + 1), items + n])
        encoded = [encoder.finish(tokens.index_select(1, own),
                                  encoder.merge_heads(_pair_attention(q, k, v, own, other), 1))[0]
                   for own, other in ((first, second), (second, first))]
        pooled = (encoded[0] + encoded[1]) / 2
        return self.project(pooled).chunk(3)


def _pair_attention(q, k, v, own: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Attention output of token `own` in each 2-token sequence (own, other), from the token rows' q, k,
    v (B, rows, d): softmax over the two scores = sigmoid of their difference."""
    q_own, k_own, v_own = (x.index_select(1, own) for x in (q, k, v))
    k_other, v_other = k.index_select(1, other), v.index_select(1, other)
    scale = q.shape[-1] ** -0.5
    p_own = torch.sigmoid((q_own * (k_own - k_other)).sum(-1, keepdim=True).to(_wide(q.dtype)) * scale).to(q.dtype)
    return v_other + p_own * (v_own - v_other)


def remove_component(v: torch.Tensor, r: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Row-wise v - (v.r / |r|^2) r (eq. 12): the part of v orthogonal to r."""
    coefficient = (v * r).sum(-1, keepdim=True) / (r.pow(2).sum(-1, keepdim=True) + eps)
    return v - coefficient * r
