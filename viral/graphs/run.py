"""The graphs stage: `ui`, `uu` and `ii` of one dataset from the prepare and encode outputs.

Every graph uses the TRAIN split only (split 0); n_users / n_items count ids over all splits, so users
and items without train interactions keep empty rows. A graph whose JSON records the same fingerprint
(its input files' bytes and its settings) is kept, so an interrupted run resumes after the last graph.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import scipy.sparse as sp

from viral.graphs.config import GraphsConfig
from viral.graphs.item_item import item_item_graph
from viral.graphs.store import save_graph, saved_stats
from viral.graphs.user_item import normalized_adjacency
from viral.graphs.user_user import user_user_graph
from viral.params import Params
from viral.stage import StageError

log = logging.getLogger(__name__)

INTERACTIONS_FILE = "interactions.parquet"
MODALITY_FILES = {"text": "text.parquet", "visual": "visual.parquet"}
TRAIN_SPLIT = 0


class TrainInteractions(NamedTuple):
    pairs: np.ndarray  # (n, 2) int64 [userID, itemID], train split only
    n_users: int
    n_items: int
    n_held_out: int  # valid + test rows, never used by a graph


def read_train(path: str | Path) -> TrainInteractions:
    """The train pairs of a prepared `interactions.parquet`, and the id ranges over all splits."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise StageError(f"{path}: not found (run the prepare stage first)")
    columns = ("userID", "itemID", "split")
    present = pq.read_schema(path).names
    missing = [name for name in columns if name not in present]
    if missing:
        raise StageError(f"{path}: column(s) {', '.join(missing)} missing (have {', '.join(present)})")
    table = pq.read_table(path, columns=list(columns))
    for name in columns:
        if table.column(name).null_count:
            raise StageError(f"{path}: column {name!r} holds nulls")
    users, items, split = (table.column(name).to_numpy().astype(np.int64) for name in columns)
    for name, ids in (("userID", users), ("itemID", items)):
        if len(ids) and ids.min() < 0:
            raise StageError(f"{path}: {name} {ids.min()} is negative; expected 0-based ids")
    unknown = np.setdiff1d(split, [0, 1, 2])
    if len(unknown):
        raise StageError(f"{path}: split value {unknown[0]} unknown; expected 0 (train), 1 (valid), 2 (test)")
    train = split == TRAIN_SPLIT
    n_users = int(users.max()) + 1 if len(users) else 0
    n_items = int(items.max()) + 1 if len(items) else 0
    pairs = np.stack([users[train], items[train]], axis=1)
    return TrainInteractions(pairs, n_users, n_items, int((~train).sum()))


def read_modalities(features_dir: str | Path, n_items: int) -> dict[str, np.ndarray]:
    """The frozen item features present in `features_dir` ("text", "visual"), each (n_items, d)."""
    from viral.encode.store import FeatureStoreError, read_features

    features = {}
    for name, path in modality_paths(features_dir).items():
        try:
            features[name], _ = read_features(path, n_items)
        except FeatureStoreError as err:
            raise StageError(str(err)) from None
    return features


def modality_paths(features_dir: str | Path) -> dict[str, Path]:
    paths = {name: Path(features_dir) / file for name, file in MODALITY_FILES.items()}
    present = {name: path for name, path in paths.items() if path.is_file()}
    if not present:
        raise StageError(f"{features_dir}: neither {' nor '.join(MODALITY_FILES.values())} found "
                         "(run the encode stage first)")
    return present


def fingerprint(paths: list[Path], settings: dict[str, Any]) -> str:
    """sha256 over the input files' bytes and the graph's settings."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in paths:
        digest.update(f"{path.name}\0".encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def build_graph(out_dir: Path, name: str, inputs: list[Path], settings: dict[str, Any],
                build: Callable[[], sp.csr_matrix], unit: str, count: int) -> dict[str, Any]:
    """Build, save and log one graph, unless an identical one (same fingerprint) is already saved."""
    stamp = fingerprint(inputs, settings)
    previous = saved_stats(out_dir, name)
    if previous is not None and previous.get("fingerprint") == stamp:
        log.info("%s: %s is up to date (same inputs and settings): kept", name, out_dir / f"{name}.npz")
        return previous
    start = time.perf_counter()
    matrix = build()
    seconds = time.perf_counter() - start
    rate = count / seconds if seconds > 0 else None
    stats = save_graph(out_dir, name, matrix, {
        "params": settings,
        "inputs": [str(path) for path in inputs],
        "fingerprint": stamp,
        "seconds": round(seconds, 3),
        f"{unit}_per_s": round(rate, 1) if rate else None,
    })
    log.info("%s: %d x %d, nnz %d, %.2f s (%s %s/s)", name, *matrix.shape, matrix.nnz, seconds,
             f"{rate:,.0f}" if rate else "-", unit)
    return stats


def build_graphs(prepared_dir: str | Path, features_dir: str | Path, out_dir: str | Path,
                 config: GraphsConfig, seed: int, progress: bool = True) -> dict[str, dict[str, Any]]:
    """Write ui, uu and ii (`<name>.npz` + `<name>.json`) into `out_dir`; return their stats."""
    interactions = Path(prepared_dir) / INTERACTIONS_FILE
    out_dir = Path(out_dir)
    train = read_train(interactions)
    if len(train.pairs) == 0:
        raise StageError(f"{interactions}: no train interactions (split 0)")
    log.info("graphs from %s: %d users, %d items, %d train pairs (%d valid/test rows left out)",
             interactions, train.n_users, train.n_items, len(train.pairs), train.n_held_out)
    stats = {}
    stats["ui"] = build_graph(
        out_dir, "ui", [interactions], {}, unit="edges", count=len(train.pairs),
        build=lambda: normalized_adjacency(train.pairs, train.n_users, train.n_items))

    uu_settings = {"uu_k": config.uu_k, "uu_weight": config.uu_weight, "uu_pad": config.uu_pad}
    if config.uu_pad == "random":
        uu_settings["seed"] = seed
    stats["uu"] = build_graph(
        out_dir, "uu", [interactions], uu_settings, unit="users", count=train.n_users,
        build=lambda: user_user_graph(train.pairs, train.n_users, train.n_items, config.uu_k,
                                      weight=config.uu_weight, pad=config.uu_pad, seed=seed,
                                      chunk_rows=config.chunk_rows, progress=progress))

    modalities = modality_paths(features_dir)
    ii_settings = {"knn_k": config.knn_k, "ii_graph": config.ii_graph, "ii_norm": config.ii_norm,
                   "ii_self_loop": config.ii_self_loop, "modalities": sorted(modalities)}
    if config.ii_graph == "dragon_weighted":
        ii_settings["ii_image_weight"] = config.ii_image_weight
    stats["ii"] = build_graph(
        out_dir, "ii", list(modalities.values()), ii_settings, unit="items", count=train.n_items,
        build=lambda: item_item_graph(read_modalities(features_dir, train.n_items), config.knn_k,
                                      method=config.ii_graph, image_weight=config.ii_image_weight,
                                      self_loop=config.ii_self_loop, norm=config.ii_norm,
                                      chunk_rows=config.chunk_rows, progress=progress))
    return stats


def run_graphs(params: Params) -> None:
    dataset = params.dataset
    build_graphs(Path("data/prepared") / dataset, Path("data/features") / dataset, Path("data/graphs") / dataset,
                 params.graphs, params.data_seed)
