"""User–user co-interaction graph (model-spec §3.3 and A8), from train interactions only.

C = R Rᵀ on the binary train matrix R, diagonal dropped; each user keeps its top-k co-users by count
(ties: lower user id first) and weighs them by `softmax` over the kept counts (DRAGON) or `row_norm`
(count / sum of kept counts). Users with fewer than k co-users keep what they have; users with none get
an empty row. Rows of C are computed `chunk_rows` users at a time, so C is never held whole.

`pad="random"` reproduces DRAGON's padding of short neighbour lists: the list is grown to k slots by
repeatedly appending a copy of a uniformly chosen slot of the list so far (earlier copies included), and a
neighbour held in m slots gets m times its single-slot weight. The uniform draws come from one
(n_users, k) matrix of `numpy.random.default_rng(seed).random`, row u for user u, so the graph does not
depend on `chunk_rows`. DRAGON redraws this padding every epoch; here it is drawn once.
"""
from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp

from viral.graphs.topk import RowEntries, row_starts, top_k_counts
from viral.graphs.user_item import interaction_matrix


def co_interaction_rows(r: sp.csr_matrix, r_t: sp.csr_matrix, start: int, stop: int) -> RowEntries:
    """Non-zero off-diagonal entries of rows start..stop-1 of R Rᵀ (rows relative to `start`)."""
    block = (r[start:stop] @ r_t).tocoo()
    off_diagonal = block.col != block.row + start
    return RowEntries(block.row[off_diagonal].astype(np.int64), block.col[off_diagonal].astype(np.int64),
                      np.rint(block.data[off_diagonal]).astype(np.int64))


def pad_multiplicity(entries: RowEntries, n_rows: int, k: int, uniforms: np.ndarray) -> np.ndarray:
    """How many of the k slots each kept entry fills after DRAGON-style random padding.

    `entries` are top-k entries sorted by row and rank; `uniforms` is (n_rows, k) in [0, 1). Slot j of a
    short row copies slot floor(u[row, j] * j) (a uniform pick among the j slots filled so far).
    """
    rank = np.arange(len(entries.rows)) - row_starts(entries.rows)
    per_row = np.bincount(entries.rows, minlength=n_rows)
    short = np.flatnonzero((per_row > 0) & (per_row < k))
    multiplicity = np.ones(len(entries.rows), dtype=np.float64)
    if len(short) == 0:
        return multiplicity
    slots = np.tile(np.arange(k), (len(short), 1))  # slot -> rank of the neighbour it holds
    filled = per_row[short]
    for j in range(1, k):
        pads = filled <= j
        source = np.floor(uniforms[short[pads], j] * j).astype(np.int64)
        slots[pads, j] = slots[pads, source]
    counts = np.zeros((n_rows, k))
    np.add.at(counts, (np.repeat(short, k), slots.ravel()), 1.0)
    is_short = np.isin(entries.rows, short)
    multiplicity[is_short] = counts[entries.rows[is_short], rank[is_short]]
    return multiplicity


def slot_weights(entries: RowEntries, multiplicity: np.ndarray, n_rows: int,
                 weight: Literal["softmax", "row_norm"]) -> np.ndarray:
    """Per-entry weights that sum to 1 over each row's slots (an entry in m slots counts m times)."""
    counts = entries.values
    if weight == "softmax":
        # first entry of each row holds its largest count: subtract it for a stable exp
        row_max = counts[row_starts(entries.rows)]
        mass = multiplicity * np.exp(counts - row_max)
    elif weight == "row_norm":
        mass = multiplicity * counts
    else:
        raise ValueError(f"unknown user-user weighting {weight!r}; expected softmax or row_norm")
    total = np.bincount(entries.rows, weights=mass, minlength=n_rows)
    return mass / total[entries.rows]


def user_user_graph(
    train_pairs: np.ndarray,
    n_users: int,
    n_items: int,
    k: int,
    weight: Literal["softmax", "row_norm"] = "softmax",
    pad: Literal["none", "random"] = "none",
    seed: int = 0,
    chunk_rows: int = 2048,
    progress: bool = False,
) -> sp.csr_matrix:
    """(n_users, n_users) float32 CSR: row u holds the weights of u's top-k co-interaction neighbours."""
    from tqdm import tqdm

    if pad not in ("none", "random"):
        raise ValueError(f"unknown user-user padding {pad!r}; expected none or random")
    r = interaction_matrix(train_pairs, n_users, n_items)
    r_t = r.T.tocsr()
    rng = np.random.default_rng(seed) if pad == "random" else None
    chunk_rows = max(1, chunk_rows)
    rows, cols, values = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0)]
    for start in tqdm(range(0, n_users, chunk_rows), desc="user-user", unit="chunk", disable=not progress):
        stop = min(n_users, start + chunk_rows)
        entries = top_k_counts(*co_interaction_rows(r, r_t, start, stop), k)
        multiplicity = np.ones(len(entries.rows))
        if rng is not None:
            # drawn for every user, padded or not, so that user u always gets row u of the draws
            multiplicity = pad_multiplicity(entries, stop - start, k, rng.random((stop - start, k)))
        rows.append(entries.rows + start)
        cols.append(entries.cols)
        values.append(slot_weights(entries, multiplicity, stop - start, weight))
    graph = sp.csr_matrix(
        (np.concatenate(values).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_users, n_users),
    )
    graph.sort_indices()
    return graph


def co_interaction_lists(train_pairs: np.ndarray, n_users: int, n_items: int, k: int = 200,
                         chunk_rows: int = 2048, progress: bool = False) -> sp.csr_matrix:
    """(n_users, n_users) float32 CSR of raw co-interaction counts: each user's top-k co-users (count
    descending, then id ascending; DRAGON's offline script keeps 200). Models derive their own
    weighting from it, e.g. DRAGON's per-epoch resampled graph (`sample_user_graph`)."""
    from tqdm import tqdm

    r = interaction_matrix(train_pairs, n_users, n_items)
    r_t = r.T.tocsr()
    rows, cols, values = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for start in tqdm(range(0, n_users, max(1, chunk_rows)), desc="co-interaction lists", unit="chunk",
                      disable=not progress):
        stop = min(n_users, start + max(1, chunk_rows))
        entries = top_k_counts(*co_interaction_rows(r, r_t, start, stop), k)
        rows.append(entries.rows + start)
        cols.append(entries.cols)
        values.append(entries.values)
    graph = sp.csr_matrix((np.concatenate(values).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n_users, n_users))
    graph.sort_indices()
    return graph


def sample_user_graph(counts: sp.csr_matrix, k: int, rng: np.random.Generator,
                      weight: Literal["softmax", "row_norm"] = "softmax") -> sp.csr_matrix:
    """DRAGON's per-epoch user graph from co-interaction lists (`co_interaction_lists`): each user's k
    best co-users; a shorter list is padded to k slots by re-picking its own slots at random (drawn
    from `rng`, so every epoch differs); weights = softmax of the counts over the k slots, a neighbour
    held in m slots weighing m times. Users without co-users get an empty row (h_u = 0)."""
    coo = counts.tocoo()
    entries = top_k_counts(coo.row.astype(np.int64), coo.col.astype(np.int64),
                           np.rint(coo.data).astype(np.int64), k)
    n_users = counts.shape[0]
    multiplicity = pad_multiplicity(entries, n_users, k, rng.random((n_users, k)))
    values = slot_weights(entries, multiplicity, n_users, weight).astype(np.float32)
    graph = sp.csr_matrix((values, (entries.rows, entries.cols)), shape=counts.shape)
    graph.sort_indices()
    return graph
