"""Graph files of the graphs stage: `<name>.npz` (scipy CSR) beside `<name>.json` (its stats)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from viral.io import atomic_path, write_json


def graph_stats(matrix: sp.csr_matrix) -> dict[str, Any]:
    """Shape, nnz, and the spread of neighbours per row and of row weight sums."""
    per_row = np.diff(matrix.indptr)
    sums = np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()
    filled = per_row > 0

    def spread(values: np.ndarray) -> dict[str, float]:
        if len(values) == 0:
            return {"min": 0.0, "mean": 0.0, "max": 0.0}
        return {"min": float(values.min()), "mean": round(float(values.mean()), 6), "max": float(values.max())}

    return {
        "shape": list(matrix.shape),
        "nnz": int(matrix.nnz),
        "row_nnz": spread(per_row),
        "empty_rows": int((~filled).sum()),
        "row_sum": spread(sums[filled]),
        "symmetric": bool(matrix.shape[0] == matrix.shape[1] and abs(matrix - matrix.T).max() <= 1e-6)
        if matrix.nnz else True,
    }


def save_graph(directory: str | Path, name: str, matrix: sp.csr_matrix, info: dict[str, Any]) -> dict[str, Any]:
    """Write `<name>.npz` then `<name>.json` (graph_stats plus `info`), each atomically; return the stats.

    The JSON is written last, so a JSON whose fingerprint matches always describes a complete .npz.
    """
    directory = Path(directory)
    with atomic_path(directory / f"{name}.npz") as tmp, open(tmp, "wb") as handle:
        # a file object, so that save_npz does not append ".npz" to the temporary name
        sp.save_npz(handle, matrix.tocsr(), compressed=True)
    stats = {"name": name, **graph_stats(matrix), **info}
    write_json(directory / f"{name}.json", stats)
    return stats


def load_graph(path: str | Path) -> sp.csr_matrix:
    return sp.load_npz(path).tocsr()


def saved_stats(directory: str | Path, name: str) -> dict[str, Any] | None:
    """The stats of a complete saved graph, or None when either file is missing or unreadable."""
    directory = Path(directory)
    json_path, npz_path = directory / f"{name}.json", directory / f"{name}.npz"
    if not (json_path.is_file() and npz_path.is_file()):
        return None
    try:
        return json.loads(json_path.read_text())
    except (OSError, ValueError):
        return None
