"""The graphs stage end to end on small prepared/encoded folders written here."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from viral.config import ConfigError
from viral.encode.store import write_features
from viral.graphs.config import GraphsConfig
from viral.graphs.item_item import item_item_graph
from viral.graphs.run import build_graphs, read_train
from viral.graphs.store import load_graph
from viral.graphs.user_item import normalized_adjacency
from viral.graphs.user_user import co_interaction_lists, user_user_graph
from viral.params import parse_params
from viral.stage import StageError

ROOT = Path(__file__).resolve().parents[2]
N_USERS, N_ITEMS = 40, 25
CONFIG = GraphsConfig(knn_k=4, uu_k=3, chunk_rows=7)


def write_interactions(folder: Path, frame: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "interactions.parquet", index=False)
    return folder / "interactions.parquet"


def sample_interactions(rng) -> pd.DataFrame:
    """Train, valid and test rows; the last user and the last item appear only in held-out rows."""
    pairs = {(int(u), int((rng.zipf(1.5) - 1) % (N_ITEMS - 1))) for u in rng.integers(0, N_USERS - 1, 220)}
    frame = pd.DataFrame(sorted(pairs), columns=["userID", "itemID"])
    frame["split"] = rng.choice(np.array([0, 0, 0, 1, 2], dtype=np.int8), len(frame))
    held_out = pd.DataFrame({"userID": [N_USERS - 1, 0], "itemID": [3, N_ITEMS - 1], "split": np.int8([2, 1])})
    return pd.concat([frame, held_out], ignore_index=True)


def write_modalities(folder: Path, rng) -> dict[str, np.ndarray]:
    features = {"text": rng.normal(size=(N_ITEMS, 6)).astype(np.float32),
                "visual": rng.normal(size=(N_ITEMS, 9)).astype(np.float32)}
    meta = {"model": "test", "normalize": False, "source": "test"}
    for name, matrix in features.items():
        write_features(folder / f"{name}.parquet", np.arange(N_ITEMS), matrix, meta)
    return features


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(11)
    frame = sample_interactions(rng)
    write_interactions(tmp_path / "prepared", frame)
    features = write_modalities(tmp_path / "features", rng)
    return tmp_path, frame, features


def run(root: Path, config: GraphsConfig = CONFIG, seed: int = 5):
    return build_graphs(root / "prepared", root / "features", root / "graphs", config, seed, progress=False)[0]


def directory_digest(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def test_graphs_equal_the_library_functions_on_train_pairs(dataset):
    root, frame, features = dataset
    run(root)
    train = frame.loc[frame["split"] == 0, ["userID", "itemID"]].to_numpy()
    expected = {
        "ui": normalized_adjacency(train, N_USERS, N_ITEMS),
        "uu": user_user_graph(train, N_USERS, N_ITEMS, k=3),
        "uu_counts": co_interaction_lists(train, N_USERS, N_ITEMS, k=200),
        "ii_viral": item_item_graph(features, k=4),
        "ii_dragon": item_item_graph(features, k=4, method="dragon_weighted", image_weight=0.1, norm="none"),
        "ii_lattice_text": item_item_graph({"text": features["text"]}, k=4),
        "ii_lattice_visual": item_item_graph({"visual": features["visual"]}, k=4),
    }
    assert {path.stem for path in (root / "graphs").glob("*.npz")} == set(expected)
    for name, matrix in expected.items():
        saved = load_graph(root / "graphs" / f"{name}.npz")
        assert saved.shape == matrix.shape
        np.testing.assert_allclose(saved.toarray(), matrix.toarray(), atol=1e-6)
        stats = json.loads((root / "graphs" / f"{name}.json").read_text())
        assert stats["nnz"] == matrix.nnz and stats["shape"] == list(matrix.shape)
        assert not {"seconds", "items_per_s", "users_per_s", "edges_per_s"} & set(stats), "timings in an output"


def test_no_graph_includes_a_valid_or_test_interaction(dataset):
    root, frame, _ = dataset
    run(root)
    ui = load_graph(root / "graphs" / "ui.npz")
    train = set(map(tuple, frame.loc[frame["split"] == 0, ["userID", "itemID"]].to_numpy()))
    held_out = [pair for pair in map(tuple, frame.loc[frame["split"] > 0, ["userID", "itemID"]].to_numpy())
                if pair not in train]
    assert len(held_out) > 10
    for user, item in held_out:
        assert ui[user, N_USERS + item] == 0 and ui[N_USERS + item, user] == 0
    edges = set(zip(*ui[:N_USERS].nonzero()))
    assert edges == {(u, N_USERS + i) for u, i in train}
    # the held-out-only user and item exist (ids over all splits) but have no edges anywhere
    uu = load_graph(root / "graphs" / "uu.npz")
    assert ui.shape == (N_USERS + N_ITEMS,) * 2 and uu.shape == (N_USERS, N_USERS)
    assert ui[N_USERS - 1].nnz == 0 and ui[N_USERS + N_ITEMS - 1].nnz == 0
    assert uu[N_USERS - 1].nnz == 0 and uu[:, N_USERS - 1].nnz == 0
    everything = frame[["userID", "itemID"]].to_numpy()
    assert (uu != user_user_graph(everything, N_USERS, N_ITEMS, k=3)).nnz > 0, "held-out rows would change uu"


def test_rerun_keeps_up_to_date_graphs_and_rebuilds_changed_ones(dataset):
    root, _, _ = dataset
    first = run(root)
    mtimes = {name: (root / "graphs" / f"{name}.npz").stat().st_mtime_ns for name in first}
    run(root)
    assert all((root / "graphs" / f"{name}.npz").stat().st_mtime_ns == mtimes[name] for name in first)
    changed = run(root, GraphsConfig(knn_k=2, uu_k=3, chunk_rows=7))
    assert changed["ii_viral"]["params"]["knn_k"] == 2
    assert changed["ii_viral"]["fingerprint"] != first["ii_viral"]["fingerprint"]
    assert (root / "graphs" / "uu.npz").stat().st_mtime_ns == mtimes["uu"]
    assert load_graph(root / "graphs" / "ii_viral.npz").nnz == 2 * N_ITEMS
    assert not [p for p in (root / "graphs").iterdir() if p.name.startswith(".")], "temporary files left"


def test_random_padding_is_seeded_by_the_top_level_seed(dataset):
    root, _, _ = dataset
    config = GraphsConfig(knn_k=4, uu_k=6, uu_pad="random", chunk_rows=7)
    a = run(root, config, seed=1)["uu"]
    assert run(root, config, seed=1)["uu"]["fingerprint"] == a["fingerprint"]
    assert run(root, config, seed=2)["uu"]["params"]["seed"] == 2


def test_one_modality_is_enough(dataset):
    root, _, features = dataset
    run(root)
    (root / "features" / "visual.parquet").unlink()
    stats = run(root)
    assert stats["ii_viral"]["params"]["modalities"] == ["text"]
    np.testing.assert_allclose(load_graph(root / "graphs" / "ii_viral.npz").toarray(),
                               item_item_graph({"text": features["text"]}, k=4).toarray(), atol=1e-6)
    # the visual-only graph is gone rather than left stale beside the others
    assert "ii_lattice_visual" not in stats and not (root / "graphs" / "ii_lattice_visual.npz").exists()


def test_rebuilding_from_the_same_inputs_writes_identical_bytes(dataset):
    """DVC hashes the output folder: a forced rebuild (code edit, `dvc repro -f`) must not change it."""
    root, _, _ = dataset
    run(root)
    first = directory_digest(root / "graphs")
    for path in (root / "graphs").glob("*.json"):
        path.unlink()  # forget every graph: all are rebuilt
    run(root)
    assert directory_digest(root / "graphs") == first


def test_a_damaged_graph_with_an_intact_sidecar_is_rebuilt(dataset):
    root, _, _ = dataset
    run(root)
    good = (root / "graphs" / "uu.npz").read_bytes()
    (root / "graphs" / "uu.npz").write_bytes(b"garbage")
    run(root)
    assert (root / "graphs" / "uu.npz").read_bytes() == good


def test_a_damaged_graph_is_a_one_line_error_when_read(tmp_path):
    (tmp_path / "uu.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"uu.npz: not a readable graph file .*run the graphs stage again"):
        load_graph(tmp_path / "uu.npz")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: (root / "prepared" / "interactions.parquet").unlink(), "not found (run the prepare stage"),
        (lambda root: write_interactions(root / "prepared", pd.DataFrame({"userID": [0], "itemID": [0]})),
         "column(s) split missing"),
        (lambda root: write_interactions(root / "prepared", pd.DataFrame({"userID": [0], "itemID": [0], "split": [7]})),
         "split value 7 unknown"),
        (lambda root: write_interactions(root / "prepared", pd.DataFrame({"userID": [-1], "itemID": [0], "split": [0]})),
         "userID -1 is negative"),
        (lambda root: write_interactions(root / "prepared", pd.DataFrame({"userID": [0], "itemID": [0], "split": [2]})),
         "no train interactions"),
        (lambda root: [p.unlink() for p in (root / "features").glob("*.parquet")], "run the encode stage first"),
        (lambda root: write_features(root / "features" / "text.parquet", np.arange(3), np.ones((3, 2)),
                                     {"model": "m", "normalize": False, "source": "s"}), "3 item rows"),
        (lambda root: (root / "features" / "text.parquet").write_bytes(b"<html>not found</html>"),
         "text.parquet: not a readable Parquet feature file"),
    ],
)
def test_bad_inputs_fail_with_one_line_naming_the_file(dataset, damage, message):
    root, _, _ = dataset
    damage(root)
    with pytest.raises(StageError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        run(root)
    assert "\n" not in str(err.value)


def test_read_train_counts_ids_over_all_splits(tmp_path):
    frame = pd.DataFrame({"userID": [0, 4, 1], "itemID": [2, 0, 6], "split": np.int8([0, 1, 2])})
    train = read_train(write_interactions(tmp_path, frame))
    assert (train.n_users, train.n_items, train.n_held_out) == (5, 7, 2)
    assert train.pairs.tolist() == [[0, 2]]


@pytest.mark.parametrize("key, value, message", [
    ("knn_k", 0, "graphs.knn_k: expected >= 1, got 0"),
    ("chunk_rows", -5, "graphs.chunk_rows: expected >= 1, got -5"),
    ("dragon_image_weight", 1.5, "graphs.dragon_image_weight: expected >= 0 and <= 1, got 1.5"),
    ("ii_norm", "l1", "graphs.ii_norm: got 'l1'"),
])
def test_bad_graph_params_are_named(key, value, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_params({"graphs": {key: value}})


def test_stage_entry_reports_missing_inputs_in_one_line(tmp_path):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(ROOT / "stages" / "graphs.py")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: graphs: data/prepared/synthetic/interactions")
