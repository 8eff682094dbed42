"""Transformer blocks of VIRAL's information-aware fusion: synergy (CSE) and redundancy (TBR)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel


class AttentionBlock(nn.Module):
    """One post-LayerNorm transformer layer: multi-head attention of `query` over `context`, then FFN.

    query: (B, S, w). context: (B, T, w), or, when `neighbours` (B, k) is given, the (N, w) rows from
    which each query batch row gathers its own k keys (-1 = padding, masked out). Projecting K/V
    before gathering keeps the neighbour mode O(N k w) instead of O(N k w^2).
    """

    def __init__(self, width: int, heads: int, ffn_mult: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"attention width {width} is not divisible by {heads} heads")
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, width)
        self.norm_attn = nn.LayerNorm(width)
        self.norm_ffn = nn.LayerNorm(width)
        self.ffn = nn.Sequential(nn.Linear(width, ffn_mult * width), nn.GELU(), nn.Linear(ffn_mult * width, width))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.heads, width // self.heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, context: torch.Tensor, neighbours: torch.Tensor | None = None) -> torch.Tensor:
        keys, values, mask = self.key(context), self.value(context), None
        if neighbours is not None:
            mask = (neighbours >= 0)[:, None, None, :]
            # index_select (backward: index_add_) is much faster on CPU than advanced indexing's index_put_.
            index = neighbours.clamp(min=0).reshape(-1)
            keys = keys.index_select(0, index).view(*neighbours.shape, -1)
            values = values.index_select(0, index).view(*neighbours.shape, -1)
        q, k, v = self._split(self.query(query)), self._split(keys), self._split(values)
        if query.device.type == "cpu":
            # On CPU the fused (flash) kernel's backward is ~3-8x slower than the plain matmul form.
            with sdpa_kernel(SDPBackend.MATH):
                attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        batch, _, length, _ = attended.shape
        x = self.norm_attn(query + self.out(attended.transpose(1, 2).reshape(batch, length, -1)))
        return self.norm_ffn(x + self.ffn(x))


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
    """Cross-modal synergy estimation (CSE, eqs. 7-8) over item features.

    h_{v->t}: visual queries attend to text keys, then a self-attention layer; h_{t->v} symmetrically.
    The sequence is the item set (the authors' layout): with `neighbours` None every item attends to
    all items (O(N^2), faithful); otherwise only to the items listed in its row of `neighbours`.
    """

    def __init__(self, width: int, heads: int, ffn_mult: int) -> None:
        super().__init__()
        self.cross_vt = AttentionBlock(width, heads, ffn_mult)
        self.cross_tv = AttentionBlock(width, heads, ffn_mult)
        self.self_vt = AttentionBlock(width, heads, ffn_mult)
        self.self_tv = AttentionBlock(width, heads, ffn_mult)

    def _direction(self, cross: AttentionBlock, own: AttentionBlock, query, context, neighbours):
        if neighbours is None:
            x = cross(query[None], context[None])
            return own(x, x)[0]
        x = cross(query[:, None], context, neighbours)[:, 0]
        return own(x[:, None], x, neighbours)[:, 0]

    def forward(self, visual: torch.Tensor, text: torch.Tensor, neighbours: torch.Tensor | None = None):
        """(h_vt, h_tv), each (N, w)."""
        h_vt = self._direction(self.cross_vt, self.self_vt, visual, text, neighbours)
        h_tv = self._direction(self.cross_tv, self.self_tv, text, visual, neighbours)
        return h_vt, h_tv


class RedundancyEstimator(nn.Module):
    """Transformer-based redundancy estimation (TBR, eqs. 9-11).

    Each item is a 2-token sequence [v, t] (+ learned modality-type embeddings so the encoder can tell
    the slots apart); [MASK] tokens are learned vectors that replace a modality. One shared encoder F,
    mean pooling over the 2 tokens, linear projection g. Returns (h, h_v, h_t), each (N, w).
    """

    def __init__(self, width: int, heads: int, ffn_mult: int) -> None:
        super().__init__()
        self.encoder = AttentionBlock(width, heads, ffn_mult)
        self.project = nn.Linear(width, width)
        self.mask_tokens = nn.Parameter(torch.empty(2, width))
        self.type_embeddings = nn.Parameter(torch.empty(2, width))
        nn.init.normal_(self.mask_tokens, std=0.02)
        nn.init.normal_(self.type_embeddings, std=0.02)

    def _encode(self, visual: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        tokens = torch.stack([visual, text], dim=1) + self.type_embeddings
        return self.project(self.encoder(tokens, tokens).mean(dim=1))

    def forward(self, visual: torch.Tensor, text: torch.Tensor):
        mask_v = self.mask_tokens[0].expand_as(visual)
        mask_t = self.mask_tokens[1].expand_as(text)
        return self._encode(visual, text), self._encode(visual, mask_t), self._encode(mask_v, text)


def remove_component(v: torch.Tensor, r: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Row-wise v - (v.r / |r|^2) r (eq. 12): the part of v orthogonal to r."""
    coefficient = (v * r).sum(-1, keepdim=True) / (r.pow(2).sum(-1, keepdim=True) + eps)
    return v - coefficient * r
