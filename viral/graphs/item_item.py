"""Item–item kNN graph on frozen item features (cosine similarity), computed in row chunks.

Two constructions (model-spec §3.4 and A7):
- `viral_avgsim`: S = mean over modalities of cos(X_m, X_m) (VIRAL's ½(S_visual + S_text)), top-k per
  row on S, the kept S values are the edge weights.
- `dragon_weighted`: top-k per modality, each kept edge weighs 1/(row's neighbour count) (1/k), and the
  modality graphs are summed with weights `image_weight` (visual) and 1 - image_weight (text).
With `self_loop` every item is one of its own k neighbours (weight S_ii, i.e. 1 for a non-zero feature
vector), forced rather than left to tie-breaking against duplicate items; without it the k neighbours
exclude the item. Only a (chunk_rows, chunk_rows) tile of similarities exists at a time.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

from viral.graphs.topk import RowEntries, concat_entries, dense_top_k, top_k_entries

IMAGE_MODALITY = "visual"


def unit_rows(matrices: list[np.ndarray], chunk_rows: int = 4096) -> np.ndarray:
    """The matrices' rows scaled to unit L2 norm, side by side in one float32 (n, sum of d) array.

    Norms are taken in float64, `chunk_rows` rows at a time (no float64 copy of a whole 4096-d feature
    matrix); all-zero rows stay zero (cosine 0 with everything).
    """
    n = matrices[0].shape[0]
    out = np.empty((n, sum(m.shape[1] for m in matrices)), dtype=np.float32)
    for start in range(0, n, chunk_rows):
        stop = min(n, start + chunk_rows)
        offset = 0
        for matrix in matrices:
            block = np.asarray(matrix[start:stop], dtype=np.float64)
            norms = np.linalg.norm(block, axis=1, keepdims=True)
            out[start:stop, offset:offset + block.shape[1]] = block / np.where(norms > 0, norms, 1.0)
            offset += block.shape[1]
    return out


def normalize(matrix: sp.csr_matrix, mode: Literal["sym", "row", "none"]) -> sp.csr_matrix:
    """`sym`: D^-1/2 A D^-1/2, `row`: D^-1 A, with D the row sums; rows with sum <= 0 become empty."""
    if mode == "none":
        return matrix
    degree = np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()
    positive = degree > 0
    if mode == "row":
        left = np.where(positive, 1.0 / np.where(positive, degree, 1.0), 0.0)
        right = None
    elif mode == "sym":
        left = right = np.where(positive, 1.0 / np.sqrt(np.where(positive, degree, 1.0)), 0.0)
    else:
        raise ValueError(f"unknown normalisation {mode!r}; expected sym, row or none")
    coo = matrix.tocoo()
    values = coo.data * left[coo.row]
    if right is not None:
        values = values * right[coo.col]
    return sp.csr_matrix((values, (coo.row, coo.col)), shape=matrix.shape)


def nearest_neighbours(stacked: np.ndarray, k: int, self_loop: bool, chunk_rows: int, scale: float = 1.0,
                       progress: bool = False) -> RowEntries:
    """k nearest items of every item under S = scale * stacked @ stacked.T.

    `stacked` holds the unit-norm feature rows of every modality side by side, so one product gives the
    sum of the per-modality cosine similarities (scale = 1 / n_modalities makes it their mean). Returns
    global (row, col, similarity) entries; a forced self entry counts towards k. S is symmetric, so only
    the tiles on and above the diagonal are computed (half the matrix products): each off-diagonal tile
    feeds the candidates of its rows and, transposed, of its columns. Every row tile keeps a running
    top-k, so memory stays at one (chunk_rows, chunk_rows) tile plus the n_items * k result.
    """
    import torch
    from tqdm import tqdm

    n = stacked.shape[0]
    features = torch.from_numpy(np.ascontiguousarray(stacked, dtype=np.float32))
    others = max(0, min(k - 1 if self_loop else k, n - 1))
    size = max(1, min(chunk_rows, n))
    bounds = [(start, min(n, start + size)) for start in range(0, n, size)]
    # candidates per row tile (rows relative to the tile), cut back to the top-k whenever they pile up
    pending: list[list[RowEntries]] = [[] for _ in bounds]
    self_parts: list[RowEntries] = []
    block_buf = torch.empty(size, size, dtype=torch.float32)

    def best_of(tile: int) -> RowEntries:
        best = top_k_entries(*concat_entries(pending[tile]), others)
        pending[tile] = [best]
        return best

    def keep_best(tile: int, found: RowEntries, col_offset: int) -> None:
        pending[tile].append(RowEntries(found.rows, found.cols + col_offset, found.values))
        if sum(len(part.rows) for part in pending[tile]) > 8 * size * max(others, 1):
            best_of(tile)

    tiles = [(a, b) for a in range(len(bounds)) for b in range(a, len(bounds))]
    for a, b in tqdm(tiles, desc="item-item kNN", unit="tile", disable=not progress):
        (row_start, row_stop), (col_start, col_stop) = bounds[a], bounds[b]
        block = block_buf[: row_stop - row_start, : col_stop - col_start]
        torch.mm(features[row_start:row_stop], features[col_start:col_stop].T, out=block)
        if scale != 1.0:
            block.mul_(scale)
        if a == b:
            diagonal = torch.arange(row_stop - row_start)
            if self_loop:
                own = np.arange(row_start, row_stop, dtype=np.int64)
                self_parts.append(RowEntries(own, own, block[diagonal, diagonal].numpy().copy()))
            block[diagonal, diagonal] = -torch.inf  # the item itself is never one of its "others"
            keep_best(a, dense_top_k(block, others), col_start)
        else:
            keep_best(a, dense_top_k(block, others), col_start)
            keep_best(b, dense_top_k(block.T, others), row_start)
    neighbours = [RowEntries(found.rows + start, found.cols, found.values)
                  for found, (start, _) in ((best_of(tile), bound) for tile, bound in enumerate(bounds))]
    return concat_entries(neighbours + self_parts)


def item_item_graph(
    features: dict[str, np.ndarray],
    k: int,
    method: Literal["viral_avgsim", "dragon_weighted"] = "viral_avgsim",
    image_weight: float = 0.1,
    self_loop: bool = True,
    norm: Literal["sym", "row", "none"] = "sym",
    chunk_rows: int = 2048,
    progress: bool = False,
) -> sp.csr_matrix:
    """(n_items, n_items) float32 CSR kNN graph from per-modality features ("text", "visual", ...)."""
    if not features:
        raise ValueError("item-item graph: no modality features given")
    shapes = {name: np.shape(matrix) for name, matrix in features.items()}
    n_items = {shape[0] for shape in shapes.values()}
    if len(n_items) != 1 or any(len(shape) != 2 for shape in shapes.values()):
        raise ValueError(f"item-item graph: modalities must be (n_items, d) with the same n_items, got {shapes}")
    (n,) = n_items
    if method == "viral_avgsim":
        stacked = unit_rows(list(features.values()))
        entries = nearest_neighbours(stacked, k, self_loop, chunk_rows, 1.0 / len(features), progress)
        rows, cols, values = entries.rows, entries.cols, entries.values.astype(np.float64)
    elif method == "dragon_weighted":
        weights = modality_weights(list(features), image_weight)
        rows_parts, cols_parts, value_parts = [], [], []
        for name, matrix in features.items():
            entries = nearest_neighbours(unit_rows([matrix]), k, self_loop, chunk_rows, progress=progress)
            per_row = np.bincount(entries.rows, minlength=n)
            rows_parts.append(entries.rows)
            cols_parts.append(entries.cols)
            value_parts.append(weights[name] / per_row[entries.rows])
        rows, cols, values = (np.concatenate(p) for p in (rows_parts, cols_parts, value_parts))
    else:
        raise ValueError(f"unknown item-item graph {method!r}; expected viral_avgsim or dragon_weighted")
    # duplicate (row, col) pairs (the same neighbour in both modalities) add up here
    graph = sp.csr_matrix((values, (rows, cols)), shape=(n, n))
    graph = normalize(graph, norm).astype(np.float32)
    graph.eliminate_zeros()  # e.g. neighbours of an all-zero feature vector
    graph.sort_indices()
    return graph


def modality_weights(names: list[str], image_weight: float) -> dict[str, float]:
    """DRAGON's mixing weights: `image_weight` for the visual graph, the rest shared by the others."""
    if len(names) == 1:
        return {names[0]: 1.0}
    if IMAGE_MODALITY not in names:
        raise ValueError(f"dragon_weighted needs a {IMAGE_MODALITY!r} modality, got {names}")
    rest = (1.0 - image_weight) / (len(names) - 1)
    return {name: image_weight if name == IMAGE_MODALITY else rest for name in names}
