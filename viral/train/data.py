"""What the engine trains and evaluates on: the model inputs plus the valid/test pairs, loaded from
the pipeline's artifacts (prepared split, features, graphs) or straight from an MMRec data folder."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from viral.graphs.config import GraphsConfig
from viral.graphs.variants import VARIANTS, GraphSource, buildable, build_variant
from viral.models.base import FEATURE_NAMES, ModelInputs
from viral.stage import StageError

SPLITS = {"train": 0, "valid": 1, "test": 2}


@dataclass
class TrainData:
    """Model inputs (train split only) plus the held-out (n, 2) [userID, itemID] pairs per split."""

    inputs: ModelInputs
    held_out: dict[str, np.ndarray]
    name: str = ""


def from_interactions(interactions: pd.DataFrame, n_users: int, n_items: int, name: str = "") -> TrainData:
    """Split an `userID, itemID, split` frame (split 0/1/2) into a TrainData without features or graphs."""
    pairs = interactions[["userID", "itemID"]].to_numpy(dtype=np.int64)
    split = interactions["split"].to_numpy()
    by_split = {key: pairs[split == code] for key, code in SPLITS.items()}
    inputs = ModelInputs(n_users=n_users, n_items=n_items, train_pairs=by_split.pop("train"))
    return TrainData(inputs=inputs, held_out=by_split, name=name)


def _missing(requires: Iterable[str], have: Iterable[str]) -> list[str]:
    return sorted(set(requires) - set(have))


def add_graphs(data: TrainData, names: Iterable[str], config: GraphsConfig | None = None, seed: int = 0) -> None:
    """Build the graph variants `names` in memory from `data`'s train pairs and features, as the graphs
    stage would write them (for MMRec folders and benchmarks, which have no graphs stage)."""
    inputs = data.inputs
    source = GraphSource(inputs.train_pairs, inputs.n_users, inputs.n_items, lambda: inputs.features)
    for name in sorted(set(names) & set(VARIANTS)):
        inputs.graphs[name] = build_variant(name, source, config or GraphsConfig(), seed)


def load_mmrec_inputs(folder: str | Path, requires: Iterable[str] = ()) -> TrainData:
    """An MMRec data folder as TrainData: its own split; `text_feat.npy` / `image_feat.npy` become features
    "text" / "visual" when a model needs them; the graphs it needs are built from its train pairs and
    features with the default graphs settings."""
    from viral.data.mmrec import read_folder, read_folder_features

    source = read_folder(folder)
    data = from_interactions(source.inter, source.n_users, len(source.items), source.name)
    inputs = data.inputs
    requires = set(requires)
    if requires & set(FEATURE_NAMES):
        found = read_folder_features(folder)
        for name, key in (("text", "text"), ("visual", "image")):
            if name in requires and key in found:
                inputs.features[name] = found[key]
    add_graphs(data, {name for name in requires & set(VARIANTS)
                      if buildable(name, set(inputs.features))})
    missing = _missing(requires, [*inputs.graphs, *inputs.features])
    if missing:
        raise StageError(f"{folder}: an MMRec folder provides no {', '.join(missing)} for this model")
    return data


def load_prepared_inputs(
    prepared_dir: str | Path,
    features_dir: str | Path | None = None,
    graphs_dir: str | Path | None = None,
    requires: Iterable[str] = (),
) -> TrainData:
    """TrainData from the pipeline's artifacts (docs/artifacts.md): `interactions.parquet` and
    `items/users.parquet` of prepare, `<name>.parquet` of encode, `<name>.npz` of graphs. Only what the
    model `requires` is loaded."""
    from viral.data.prepared import load_prepared, load_users

    try:
        interactions, items = load_prepared(prepared_dir)
        users = load_users(prepared_dir)
    except FileNotFoundError as err:
        raise StageError(str(err)) from None
    data = from_interactions(interactions, len(users), len(items), Path(prepared_dir).name)
    requires = set(requires)
    for name in sorted(requires & set(FEATURE_NAMES)):
        data.inputs.features[name] = _read_feature(Path(features_dir or "") / f"{name}.parquet", len(items))
    for name in sorted(requires & set(VARIANTS)):
        data.inputs.graphs[name] = _read_graph(Path(graphs_dir or "") / f"{name}.npz")
    unknown = _missing(requires, [*FEATURE_NAMES, *VARIANTS])
    if unknown:
        raise StageError(f"the model requires unknown inputs {unknown}; known: {', '.join([*FEATURE_NAMES, *VARIANTS])}")
    return data


def _read_feature(path: Path, n_items: int) -> np.ndarray:
    from viral.encode.store import FeatureStoreError, read_features

    try:
        return read_features(path, n_items)[0]
    except FeatureStoreError as err:
        raise StageError(str(err)) from None


def _read_graph(path: Path) -> sp.csr_matrix:
    from viral.graphs.store import load_graph

    if not path.is_file():
        raise StageError(f"{path}: not found (run the graphs stage first)")
    try:
        return load_graph(path)
    except ValueError as err:
        raise StageError(str(err)) from None
