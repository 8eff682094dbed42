"""The train stage end to end on a tiny prepared dataset: outputs, schema, resume of a finished run."""
import csv
import dataclasses
import json
from pathlib import Path

import pandas as pd
import scipy.sparse as sp
import pytest
import yaml

from viral.data.prepared import Prepared, empty_items, write_prepared
from viral.graphs.user_item import normalized_adjacency
from viral.params import parse_params
from viral.stage import StageError
from viral.train.metrics import metric_names
from viral.train.run import resolved_model_config, run_train

ROOT = Path(__file__).resolve().parents[2]


def write_dataset(root: Path, data) -> None:
    inputs = data.inputs
    frames = [pd.DataFrame({"userID": inputs.train_pairs[:, 0], "itemID": inputs.train_pairs[:, 1], "split": 0})]
    frames += [pd.DataFrame({"userID": p[:, 0], "itemID": p[:, 1], "split": code})
               for code, p in ((1, data.held_out["valid"]), (2, data.held_out["test"]))]
    interactions = pd.concat(frames, ignore_index=True).astype({"split": "int8"})
    interactions["rating"] = float("nan")
    interactions["timestamp"] = pd.array([None] * len(interactions), dtype="Int64")
    items = empty_items(pd.Series([f"A{i}" for i in range(inputs.n_items)]))
    users = pd.DataFrame({"userID": range(inputs.n_users), "reviewerID": [f"U{u}" for u in range(inputs.n_users)]})
    write_prepared(root / "data/prepared/synthetic", Prepared(interactions, items, users), {})
    graphs = root / "data/graphs/synthetic"
    graphs.mkdir(parents=True)
    sp.save_npz(graphs / "ui.npz", normalized_adjacency(inputs.train_pairs, inputs.n_users, inputs.n_items))


def params(**train):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw.update(dataset="synthetic", model="lightgcn")
    raw["train"].update(epochs=4, batch_size=64, lr=0.01, device="cpu", **train)
    return parse_params(raw)


def test_train_stage_writes_metrics_curves_plot_and_model(tmp_path, tiny_data):
    write_dataset(tmp_path, tiny_data)
    record = run_train(params(), root=tmp_path)
    metrics = json.loads((tmp_path / "results/metrics.json").read_text())
    assert metrics == record
    assert set(metrics) == {"model", "dataset", "seed", "data_seed", "visual", "valid_metric", "best_epoch", "epochs", "seconds_per_epoch",
                            "seconds_per_eval", "params", "valid", "test"}
    assert (metrics["seed"], metrics["visual"]) == (999, "vlm_title")
    assert (metrics["model"], metrics["dataset"], metrics["epochs"]) == ("lightgcn", "synthetic", 4)
    assert list(metrics["test"]) == metric_names() and list(metrics["valid"]) == metric_names()
    with open(tmp_path / "results/plots/curves.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert list(rows[0]) == ["epoch", "loss", "bpr", "reg", "valid_recall@20", "valid_ndcg@20"]
    assert (tmp_path / "results/plots/curves.png").read_bytes()[:4] == b"\x89PNG"
    assert {p.name for p in (tmp_path / "models/synthetic").iterdir()} == {"best.pt", "checkpoint.pt", "report.json"}
    # A rerun finds the finished checkpoint and reproduces the same record without training.
    again = run_train(params(), root=tmp_path)
    assert {k: v for k, v in again.items() if not k.startswith("seconds")} == \
           {k: v for k, v in record.items() if not k.startswith("seconds")}


def test_top_level_knobs_fill_same_named_model_fields():
    @dataclasses.dataclass(frozen=True)
    class WithFusion:
        fusion: str = "viral"
        reg_weight: float = 0.1

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw.update(model="bpr", fusion="concat")
    p = dataclasses.replace(parse_params(raw), models={"bpr": WithFusion()})
    assert resolved_model_config(p) == WithFusion(fusion="concat", reg_weight=0.1)


def test_missing_inputs_are_one_line_stage_errors(tmp_path, tiny_data):
    with pytest.raises(StageError, match="interactions.parquet: not found"):
        run_train(params(), root=tmp_path)
    write_dataset(tmp_path, tiny_data)
    (tmp_path / "data/graphs/synthetic/ui.npz").unlink()
    with pytest.raises(StageError, match=r"ui.npz: not found \(run the graphs stage first\)"):
        run_train(params(), root=tmp_path)


def test_a_garbage_feature_file_is_a_one_line_stage_error(tmp_path, tiny_data):
    from viral.train.data import load_prepared_inputs

    write_dataset(tmp_path, tiny_data)
    features = tmp_path / "data/features/synthetic"
    features.mkdir(parents=True)
    (features / "text.parquet").write_bytes(b"<html>not parquet</html>\n" * 20)
    with pytest.raises(StageError, match=r"text\.parquet: not a readable Parquet feature file") as err:
        load_prepared_inputs(tmp_path / "data/prepared/synthetic", features, tmp_path / "data/graphs/synthetic",
                             {"text", "ui"})
    assert "\n" not in str(err.value)
