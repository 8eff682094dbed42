"""Graph files of the graphs stage: `<name>.npz` (scipy CSR) beside `<name>.json` (its stats).

The .npz is written byte-for-byte reproducibly (numpy's writer stamps the current time into the zip),
so rebuilding a graph from the same inputs leaves DVC's hash, and every stage below, unchanged. The
JSON records the .npz's sha256: a damaged or replaced .npz is never taken for an up-to-date graph.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from viral.io import atomic_path, write_json

# A fixed zip entry time (the zip epoch) instead of "now": identical graphs give identical files.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


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


def write_npz(handle, matrix: sp.csr_matrix) -> None:
    """scipy's CSR .npz layout (readable by `scipy.sparse.load_npz`), compressed, with fixed entry times."""
    csr = matrix.tocsr()
    arrays = {"indices": csr.indices, "indptr": csr.indptr, "format": np.array(b"csr"),
              "shape": np.array(csr.shape), "data": csr.data}
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_graph(directory: str | Path, name: str, matrix: sp.csr_matrix, info: dict[str, Any]) -> dict[str, Any]:
    """Write `<name>.npz` then `<name>.json` (graph_stats, the .npz's sha256 and `info`), each atomically;
    return the stats. The JSON is written last, so a JSON always describes a complete .npz."""
    directory = Path(directory)
    npz = directory / f"{name}.npz"
    with atomic_path(npz) as tmp:
        with open(tmp, "wb") as handle:
            write_npz(handle, matrix)
        checksum = file_sha256(tmp)
    stats = {"name": name, **graph_stats(matrix), "sha256": checksum, **info}
    write_json(directory / f"{name}.json", stats)
    return stats


def load_graph(path: str | Path) -> sp.csr_matrix:
    """A saved graph; a file that is not one raises ValueError naming it."""
    try:
        return sp.load_npz(path).tocsr()
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable graph file ({err}); run the graphs stage again") from None


def saved_stats(directory: str | Path, name: str) -> dict[str, Any] | None:
    """The stats of a complete, intact saved graph (its .npz matches the sha256 in its JSON), or None."""
    directory = Path(directory)
    json_path, npz_path = directory / f"{name}.json", directory / f"{name}.npz"
    if not (json_path.is_file() and npz_path.is_file()):
        return None
    try:
        stats = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stats, dict) or stats.get("sha256") != file_sha256(npz_path):
        return None
    return stats
