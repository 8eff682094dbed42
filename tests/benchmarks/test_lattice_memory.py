import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.models.test_lattice import tiny_inputs
from viral.models.lattice import LATTICE, Config

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "lattice_memory.py"
spec = importlib.util.spec_from_file_location("lattice_memory", SCRIPT)
lattice_memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lattice_memory)


def test_mmrec_split_by_hand():
    users = np.repeat([0, 1, 2], [5, 10, 12])
    split = lattice_memory.mmrec_split(users)
    # n=5: 3/1/1; n=10: vt=2 -> 8/1/1; n=12: vt=int(2.4)=2 -> 10/1/1; held-out rows are each user's last
    assert split.tolist() == [0, 0, 0, 1, 2] + [0] * 8 + [1, 2] + [0] * 10 + [1, 2]
    assert lattice_memory.mmrec_split(np.repeat([7], 20)).tolist() == [0] * 16 + [1, 1, 2, 2]


def test_clothing_like_keeps_five_per_user_and_the_split_rule(monkeypatch):
    monkeypatch.setitem(lattice_memory.CLOTHING, "users", 300)
    monkeypatch.setitem(lattice_memory.CLOTHING, "items", 200)
    monkeypatch.setitem(lattice_memory.CLOTHING, "interactions", 2400)
    frame, n_users, n_items = lattice_memory.clothing_like(0)
    assert (n_users, n_items) == (300, 200)
    assert not frame.duplicated(["userID", "itemID"]).any()
    per_user = frame.groupby("userID").split.agg(list)
    assert per_user.map(len).min() >= 5
    assert all(s.count(1) >= 1 and s.count(2) >= 1 for s in per_user)


def test_dense_baseline_is_the_same_model():
    """The code-style dense construction and ours give the same embeddings from the same weights."""
    inputs = tiny_inputs()
    config = Config(embedding_dim=8, feat_embed_dim=6, knn_k=4)
    torch.manual_seed(0)
    ours = LATTICE(inputs, config)
    torch.manual_seed(0)
    dense = lattice_memory.dense_lattice_class()(inputs, config)
    with torch.no_grad():
        for got, expected in zip(dense.embeddings(), ours.embeddings()):
            assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("run", ["lattice", "lattice_per_batch", "lattice_dense", "slmrec"])
def test_each_run_reports_its_figures(tmp_path, run):
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(20), 6)
    items = np.concatenate([rng.choice(30, 6, replace=False) for _ in range(20)])
    frame = pd.DataFrame({"userID": users, "itemID": items, "split": lattice_memory.mmrec_split(users)})
    lattice_memory.prepare(frame, 20, 30, 0, tmp_path / "tiny")
    out = lattice_memory.child(tmp_path / "tiny", run, epochs=1, threads=1)
    assert out["epochs"] == 1 and out["peak_rss_mb"] >= out["rss_loaded_mb"] > 0
    assert out["seconds_per_epoch"] >= 0 and out["seconds_per_eval"] >= 0
