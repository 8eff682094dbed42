"""Transformer blocks of VIRAL's information-aware fusion: synergy (CSE) and redundancy (TBR).

Attention kernels (all compute exact softmax attention):
- `full_attention`: every query attends to every key, through PyTorch's fused kernels (flash attention
  on CPU and CUDA), in memory linear in the sequence length.
- `neighbour_attention`: each query attends only to the keys of its row of a sparse pattern,
  with sampled and sparse matrix products (an `EdgeGraph`).
- The TBR's 2-token sequences are scored directly from the 2N+2 distinct token projections.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from viral.models.layers import EdgeGraph


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

    def forward(self, query: torch.Tensor, context: torch.Tensor, pattern: EdgeGraph | None = None):
        """`pattern` None: every query row attends to every context row; else only to those of its row
        of the pattern."""
        q, k, v = self.split_heads(self.query(query)), self.split_heads(self.key(context)), self.split_heads(self.value(context))
        attended = full_attention(q, k, v) if pattern is None else neighbour_attention(q, k, v, pattern)
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
    """softmax(q k^T / sqrt(d)) v for (B, S, d) queries and (B, T, d) keys and values.

    PyTorch's fused scaled-dot-product attention: flash attention on CPU (and flash or memory-efficient
    kernels on CUDA) keeps O(S + T) memory, no (S, T) probability matrix, and recomputes the
    probabilities blockwise in the backward pass. Those kernels take (batch, heads, length, dim) only;
    3-d inputs would fall back to the math kernel and its (S, T) matrix, hence the extra axis."""
    return F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]


def _wide(dtype: torch.dtype) -> torch.dtype:
    """The precision softmaxes and sums run in: fp32, or the input's if wider."""
    return torch.promote_types(dtype, torch.float32)


def neighbour_pattern(graph: sp.spmatrix) -> EdgeGraph:
    """Which keys each query may attend to in the scalable synergy mode: row i of an (N, N) item-item
    graph's non-zeros plus i itself."""
    pattern = sp.csr_matrix(graph, dtype=np.float32) != 0
    return EdgeGraph(pattern + sp.identity(graph.shape[0], dtype=bool, format="csr"))


@torch.compiler.disable  # sparse CSR products: kept out of torch.compile graphs
def neighbour_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, pattern: EdgeGraph) -> torch.Tensor:
    """Row i of the (B, N, d) queries attends to the key/value rows of row i of `pattern`: scores by
    sampled products, aggregation by sparse products, so the cost is O(B nnz d) and no (N, k, d) gather
    is built. Runs in fp32 (or wider) whatever the inputs' precision."""
    dtype, wide = q.dtype, _wide(q.dtype)
    scale = q.shape[-1] ** -0.5
    with torch.autocast(q.device.type, enabled=False):
        out = [pattern.propagate(pattern.softmax(pattern.scores(q_b * scale, k_b)), v_b)
               for q_b, k_b, v_b in zip(q.to(wide), k.to(wide), v.to(wide))]
    return torch.stack(out).to(dtype)


class SynergyEstimator(nn.Module):
    """Cross-modal synergy estimation (CSE, eqs. 7-8) over item features of width w.

    h_{v->t}: visual queries attend to text keys, then a self-attention layer; h_{t->v} symmetrically.
    The two directions have their own weights and run batched (group 0: v->t, group 1: t->v). The
    sequence is the item set (the authors' layout): with `pattern` None every item attends to all
    items (O(N^2) time, faithful); otherwise only to itself and its item-item neighbours (scalable).
    """

    def __init__(self, width: int, heads: int, ffn_mult: int) -> None:
        super().__init__()
        self.cross = AttentionBlocks(2, width, heads, ffn_mult)
        self.own = AttentionBlocks(2, width, heads, ffn_mult)

    def forward(self, visual: torch.Tensor, text: torch.Tensor, pattern: EdgeGraph | None = None):
        """(h_vt, h_tv), each (N, w)."""
        x = self.cross(torch.stack([visual, text]), torch.stack([text, visual]), pattern)
        h = self.own(x, x, pattern)
        return h[0], h[1]


class RedundancyEstimator(nn.Module):
    """Transformer-based redundancy estimation (TBR, eqs. 9-11).

    Each item is a 2-token sequence [v, t] (+ learned modality-type embeddings so the encoder can tell
    the slots apart); [MASK] tokens are learned vectors that replace a modality. One shared encoder F
    over the three sequences [v, t], [v, MASK_t], [MASK_v, t]; mean pooling over the 2 tokens; linear
    projection g (`project`) from the attention width to `out_width` (the visual feature width, so that r
    lives in v's space for eq. 12): h = g(pooled [v, t]), h_v = g(pooled [v, MASK_t]),
    h_t = g(pooled [MASK_v, t]).

    `forward` returns the three pooled encodings, before g: g is affine, so the caller projects their mean
    once for r = (h + h_v + h_t) / 3 and only the rows its InfoNCE terms need for the views. The
    three sequences hold only 2N + 2 distinct tokens (N visual, N text, 2 masks): their query, key and
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

    def forward(self, visual: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pooled encodings of [v, t], [v, MASK_t], [MASK_v, t], each (N, width)."""
        n, encoder = len(visual), self.encoder
        tokens = torch.cat([visual + self.type_embeddings[0], text + self.type_embeddings[1],
                            self.mask_tokens + self.type_embeddings])[None]  # rows: v_i, t_i, MASK_v, MASK_t
        projected = [encoder.split_heads(layer(tokens)) for layer in (encoder.query, encoder.key, encoder.value)]
        # Each token kind's rows, and its (q, k, v); a mask's single row broadcasts over the items. (split,
        # not slicing: its backward concatenates instead of zero-filling a full-size gradient per slice.)
        kinds, sizes = ("v", "t", "mask_v", "mask_t"), [n, n, 1, 1]
        residuals = dict(zip(kinds, tokens.split(sizes, dim=1)))
        qkv = dict(zip(kinds, zip(*(x.split(sizes, dim=1) for x in projected))))
        # Every (own, other) token pair: the first then the second token of [v, t], [v, MASK_t], [MASK_v, t].
        pairs = [("v", "t"), ("v", "mask_t"), ("mask_v", "t"), ("t", "v"), ("mask_t", "v"), ("t", "mask_v")]
        attended = torch.cat([_pair_attention(qkv[own], qkv[other]) for own, other in pairs], dim=1)
        residual = torch.cat([residuals[own].expand(1, n, -1) for own, _ in pairs], dim=1)
        attended = encoder.merge_heads(attended, 1)
        first, second = encoder.finish(residual, attended)[0].chunk(2)
        return ((first + second) / 2).chunk(3)


def _pair_attention(own: tuple[torch.Tensor, ...], other: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Attention output of token `own` in the 2-token sequence (own, other), from each token's
    (q, k, v) projections (heads, rows, d; a single row broadcasts): softmax over the two scores =
    sigmoid of their difference."""
    (q_own, k_own, v_own), (_, k_other, v_other) = own, other
    scale = q_own.shape[-1] ** -0.5
    score = (q_own * (k_own - k_other)).sum(-1, keepdim=True)
    p_own = torch.sigmoid(score.to(_wide(q_own.dtype)) * scale).to(q_own.dtype)
    return v_other + p_own * (v_own - v_other)


def remove_component(v: torch.Tensor, r: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Row-wise v - (v.r / |r|^2) r (eq. 12): the part of v orthogonal to r."""
    coefficient = (v * r).sum(-1, keepdim=True) / (r.pow(2).sum(-1, keepdim=True) + eps)
    return v - coefficient * r
