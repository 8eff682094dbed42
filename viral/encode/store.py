"""Item feature store: one Parquet file per modality, keyed by the contiguous 0-based itemID.

Schema (docs/artifacts.md): `itemID int64, embedding fixed_size_list<float32>[d], imputed bool`, sorted
by itemID. The schema metadata holds `model`, `dim`, `normalize`, `source` (and any other key the writer
passes), each value JSON-encoded so that a plain `pyarrow.parquet.read_schema` shows them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from viral.io import write_parquet

REQUIRED_METADATA = ("model", "normalize", "source")
# Keys pyarrow/pandas put in the schema metadata themselves: never ours to decode.
_FOREIGN_PREFIXES = ("ARROW:", "pandas")


class FeatureStoreError(ValueError):
    """A feature file (or the data about to be written) breaks the contract; the message names it."""


def _check_contiguous(ids: np.ndarray, where: str) -> None:
    """Raise unless `ids` is a permutation of 0..n-1 (each itemID exactly once)."""
    n = len(ids)
    if n == 0:
        raise FeatureStoreError(f"{where}: no items")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= n:
        raise FeatureStoreError(
            f"{where}: itemID must be contiguous 0..{n - 1}, found values in {low}..{high}")
    counts = np.bincount(ids, minlength=n)
    if (counts != 1).any():
        missing = np.flatnonzero(counts == 0)
        raise FeatureStoreError(
            f"{where}: itemID must be contiguous 0..{n - 1}: {len(missing)} missing "
            f"(first {int(missing[0])}), {int((counts > 1).sum())} duplicated")


def write_features(path: str | Path, item_ids, matrix, metadata: dict[str, Any],
                   imputed=None) -> None:
    """Write an (n_items, d) feature matrix atomically, rows sorted by itemID.

    `item_ids` must be a permutation of 0..n-1 (row i of `matrix` belongs to `item_ids[i]`).
    `metadata` must hold `model`, `normalize` and `source`; `dim` is taken from the matrix.
    `imputed` flags rows that were filled in (default: none); it may also come as `metadata["imputed"]`,
    so that the metadata returned by `read_features` can be written back unchanged.
    """
    import pyarrow as pa

    where = str(path)
    metadata = dict(metadata)
    mask_from_meta = metadata.pop("imputed", None)
    imputed = mask_from_meta if imputed is None else imputed
    missing_keys = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing_keys:
        raise FeatureStoreError(f"{where}: metadata lacks {', '.join(missing_keys)}")
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise FeatureStoreError(f"{where}: expected an (n_items, d) matrix, got shape {matrix.shape}")
    ids = np.asarray(item_ids, dtype=np.int64)
    if ids.shape != (matrix.shape[0],):
        raise FeatureStoreError(f"{where}: {len(ids)} item ids for {matrix.shape[0]} matrix rows")
    _check_contiguous(ids, where)
    mask = np.zeros(len(ids), dtype=bool) if imputed is None else np.asarray(imputed, dtype=bool)
    if mask.shape != ids.shape:
        raise FeatureStoreError(f"{where}: imputed mask has {mask.size} entries for {len(ids)} items")
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    bad_rows = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if len(bad_rows):
        raise FeatureStoreError(
            f"{where}: {len(bad_rows)} rows hold NaN/inf (first itemID {int(ids[bad_rows[0]])})")
    if (np.diff(ids) < 0).any():
        order = np.argsort(ids, kind="stable")
        ids, matrix, mask = ids[order], matrix[order], mask[order]

    dim = matrix.shape[1]
    metadata["dim"] = dim
    embedding = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), dim)
    table = pa.table({"itemID": pa.array(ids), "embedding": embedding, "imputed": pa.array(mask)})
    encoded = {key: json.dumps(value) for key, value in metadata.items()}
    write_parquet(path, table.replace_schema_metadata(encoded))


def _parquet(read, path: str | Path):
    """`read(path)`, a damaged or foreign file (truncated, garbage, not Parquet) becoming one line."""
    import pyarrow as pa

    try:
        return read(path)
    except (pa.ArrowException, OSError) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise FeatureStoreError(f"{path}: not a readable Parquet feature file ({reason}); "
                                "rerun the encode stage") from None


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The writer's metadata of a feature file (model, dim, normalize, source, ...) without its data."""
    import pyarrow.parquet as pq

    return _decode_metadata(_parquet(pq.read_schema, path).metadata, str(path))


def _decode_metadata(raw: dict[bytes, bytes] | None, where: str) -> dict[str, Any]:
    decoded = {}
    for key, value in (raw or {}).items():
        name = key.decode()
        if name.startswith(_FOREIGN_PREFIXES):
            continue
        try:
            decoded[name] = json.loads(value)
        except json.JSONDecodeError:
            raise FeatureStoreError(f"{where}: schema metadata {name!r} is not JSON: {value[:60]!r}") from None
    return decoded


def read_features(path: str | Path, n_items: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Load a feature file as a writable float32 (n_items, d) matrix in itemID order, plus its metadata.

    With `n_items`, a file with another number of item rows is an error (features from another dataset).

    The metadata dict carries the writer's keys and `imputed` (bool array, itemID order). Arrow's buffers
    are the only other copy: each record batch is scattered straight into the result.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = str(path)
    if not Path(path).is_file():
        raise FeatureStoreError(f"{where}: feature file not found")
    table = _parquet(pq.read_table, path)
    for name in ("itemID", "embedding", "imputed"):
        if name not in table.column_names:
            raise FeatureStoreError(f"{where}: column {name!r} missing (have {', '.join(table.column_names)})")
    emb_type = table.schema.field("embedding").type
    if not (pa.types.is_fixed_size_list(emb_type) and pa.types.is_float32(emb_type.value_type)):
        raise FeatureStoreError(f"{where}: column 'embedding' must be fixed_size_list<float32>, got {emb_type}")
    nulls = [name for name in ("itemID", "embedding", "imputed") if table.column(name).null_count]
    if nulls:
        raise FeatureStoreError(f"{where}: column(s) {', '.join(nulls)} hold nulls")
    ids = table.column("itemID").to_numpy().astype(np.int64, copy=False)
    _check_contiguous(ids, where)
    if n_items is not None and len(ids) != n_items:
        raise FeatureStoreError(f"{where}: {len(ids)} item rows, but the prepared data has {n_items} items")

    dim = emb_type.list_size
    matrix = np.empty((len(ids), dim), dtype=np.float32)
    start = 0
    for chunk in table.column("embedding").chunks:
        # flatten() honours the chunk's slice offset; to_numpy is a view of Arrow's buffer.
        values = chunk.flatten()
        if values.null_count:
            raise FeatureStoreError(f"{where}: embedding values hold nulls")
        stop = start + len(chunk)
        matrix[ids[start:stop]] = values.to_numpy(zero_copy_only=True).reshape(-1, dim)
        start = stop

    metadata = _decode_metadata(table.schema.metadata, where)
    if metadata.get("dim", dim) != dim:
        raise FeatureStoreError(f"{where}: metadata dim {metadata['dim']} but embeddings have {dim}")
    imputed = np.zeros(len(ids), dtype=bool)
    imputed[ids] = table.column("imputed").to_numpy(zero_copy_only=False)
    metadata["imputed"] = imputed
    return matrix, metadata
