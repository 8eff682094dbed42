"""The graphs stage: every graph variant (viral/graphs/variants.py) of one dataset from the prepare and
encode outputs.

Every graph uses the TRAIN split only (split 0); n_users / n_items count ids over all splits, so users
and items without train interactions keep empty rows. A graph whose JSON records the same fingerprint
(its input files' bytes and its settings) and whose file matches the JSON's checksum is kept, so an
interrupted run resumes after the last graph written.
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
from viral.graphs.store import save_graph, saved_stats
from viral.graphs.variants import VARIANTS, GraphSource, buildable
from viral.params import Params
from viral.run_report import write_run_report
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
                build: Callable[[], sp.csr_matrix], unit: str, count: int) -> tuple[dict[str, Any], float | None]:
    """Build, save and log one graph, unless an intact identical one (same fingerprint) is already saved.

    Returns its stats (what `<name>.json` holds: no timings, so identical inputs give identical files)
    and the seconds it took to build (None when kept).
    """
    stamp = fingerprint(inputs, settings)
    previous = saved_stats(out_dir, name)
    if previous is not None and previous.get("fingerprint") == stamp:
        log.info("%s: %s is up to date (same inputs and settings, file intact): kept", name, out_dir / f"{name}.npz")
        return previous, None
    start = time.perf_counter()
    matrix = build()
    seconds = time.perf_counter() - start
    stats = save_graph(out_dir, name, matrix, {
        "params": settings,
        "inputs": [path.name for path in inputs],
        "fingerprint": stamp,
    })
    rate = count / seconds if seconds > 0 else float("inf")
    log.info("%s: %d x %d, nnz %d, %.2f s (%s %s/s)", name, *matrix.shape, matrix.nnz, seconds, f"{rate:,.0f}", unit)
    return stats, seconds


def build_graphs(prepared_dir: str | Path, features_dir: str | Path, out_dir: str | Path,
                 config: GraphsConfig, seed: int, progress: bool = True
                 ) -> tuple[dict[str, dict[str, Any]], dict[str, float | None]]:
    """Write every graph variant (`<name>.npz` + `<name>.json`) that the features present allow into
    `out_dir`; return their stats and the seconds each build took (None: kept), which stay out of the
    files so that identical inputs give identical outputs."""
    interactions = Path(prepared_dir) / INTERACTIONS_FILE
    out_dir = Path(out_dir)
    train = read_train(interactions)
    if len(train.pairs) == 0:
        raise StageError(f"{interactions}: no train interactions (split 0)")
    log.info("graphs from %s: %d users, %d items, %d train pairs (%d valid/test rows left out)",
             interactions, train.n_users, train.n_items, len(train.pairs), train.n_held_out)
    modalities = modality_paths(features_dir)
    features: dict[str, np.ndarray] = {}

    def read_features() -> dict[str, np.ndarray]:
        if not features:
            features.update(read_modalities(features_dir, train.n_items))
        return features

    source = GraphSource(train.pairs, train.n_users, train.n_items, read_features)
    counts = {"edges": len(train.pairs), "users": train.n_users, "items": train.n_items}
    stats: dict[str, dict[str, Any]] = {}
    timings: dict[str, float | None] = {}
    for name, variant in VARIANTS.items():
        if not buildable(name, set(modalities)):
            log.info("%s: skipped (needs the %s features, absent here)", name, " and ".join(variant.modalities))
            continue
        present = sorted(m for m in variant.modalities if m in modalities)
        settings = variant.settings(config, seed)
        if present:
            settings["modalities"] = present
        inputs = [modalities[m] for m in present] or [interactions]  # item-item graphs read features only
        stats[name], timings[name] = build_graph(
            out_dir, name, inputs, settings, unit=variant.unit, count=counts[variant.unit],
            build=lambda variant=variant: variant.build(source, config, seed, progress))
    stale = [path for path in out_dir.glob("*.npz") if path.stem not in stats]
    for path in stale:  # graphs of a former layout or of a modality that is gone: never read by mistake
        path.unlink()
        path.with_suffix(".json").unlink(missing_ok=True)
    return stats, timings


def run_graphs(params: Params) -> None:
    dataset = params.dataset
    stats, timings = build_graphs(Path("data/prepared") / dataset, Path("data/features") / dataset,
                                  Path("data/graphs") / dataset, params.graphs, params.data_seed)
    write_run_report("graphs", {
        "dataset": dataset,
        "built": {name: round(seconds, 3) for name, seconds in timings.items() if seconds is not None},
        "kept": sorted(name for name, seconds in timings.items() if seconds is None),
        "graphs": {name: {"shape": graph["shape"], "nnz": graph["nnz"]} for name, graph in stats.items()},
    })
