"""What a training run leaves behind: `results/metrics.json` (the flat, stable schema of
docs/artifacts.md), per-epoch curves as CSV for `dvc plots` plus PNG renderings, each user's metrics
(`per_user.parquet`), the modality contribution (`contribution.json`), and a run report."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from viral.io import atomic_path, write_json, write_parquet
from viral.train.evaluate import UserMetrics
from viral.train.loop import FitResult

VALID_COLUMNS = ("valid_recall@20", "valid_ndcg@20")


def metrics_record(result: FitResult, model: str, dataset: str,
                   labels: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metrics.json record: test and valid at the best-valid epoch, lower-case `name@k` keys.
    `labels` (seed, visual, the model's own design choices) are kept flat beside the fixed keys."""
    return {
        "model": model,
        "dataset": dataset,
        **(labels or {}),
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "seconds_per_epoch": round(result.seconds_per_epoch, 4),
        "seconds_per_eval": round(result.seconds_per_eval, 4),
        "params": result.n_parameters,
        "valid": result.valid,
        "test": result.test,
    }


def loss_terms(history: list[dict[str, Any]]) -> list[str]:
    """The loss columns of a history ("loss" first, then each term the model logs), in first-seen order."""
    terms = {"loss": None}
    for record in history:
        terms.update({key: None for key in record if key not in ("epoch", "seconds", "eval_seconds")
                      and not key.startswith(("valid_", "test_"))})
    return list(terms)


def curve_columns(history: list[dict[str, Any]], valid_metric: str = "recall@20") -> list[str]:
    selection = f"valid_{valid_metric}"
    valid = [selection, *(c for c in VALID_COLUMNS if c != selection)]
    return ["epoch", *loss_terms(history), *valid]


def write_curves(path: str | Path, history: list[dict[str, Any]], valid_metric: str = "recall@20") -> None:
    """One row per epoch: every loss term, then the validation metrics (empty without an evaluation)."""
    columns = curve_columns(history, valid_metric)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for record in history:
            writer.writerow([record.get(column, "") for column in columns])


def plot_curves(path: str | Path, history: list[dict[str, Any]], title: str, valid_metric: str = "recall@20") -> None:
    """Every loss term and the validation metrics against the epoch, as one PNG (DVC's HTML viewer
    needs a CDN)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    columns = curve_columns(history, valid_metric)
    evaluated = [r for r in history if f"valid_{valid_metric}" in r]
    fig, (loss_ax, metric_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for term in loss_terms(history):
        loss_ax.plot(epochs, [r.get(term, float("nan")) for r in history], label=term)
    loss_ax.set(xlabel="epoch", ylabel="training loss (mean over batches)", title=title)
    loss_ax.legend()
    for column in columns[len(loss_terms(history)) + 1:]:
        metric_ax.plot([r["epoch"] for r in evaluated], [r[column] for r in evaluated], label=column)
    metric_ax.set(xlabel="epoch", ylabel="validation metric")
    metric_ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def write_outputs(result: FitResult, results_dir: str | Path, report_path: str | Path, model: str,
                  dataset: str, report: dict[str, Any], labels: dict[str, Any] | None = None) -> dict[str, Any]:
    """metrics.json and plots/curves.{csv,png} under `results_dir`, and the run report (metrics,
    `report`, per-epoch history) at `report_path`; returns the metrics record."""
    results_dir = Path(results_dir)
    record = metrics_record(result, model, dataset, labels)
    metric = result.point.valid_metric
    write_curves(results_dir / "plots" / "curves.csv", result.history, metric)
    plot_curves(results_dir / "plots" / "curves.png", result.history, f"{model} on {dataset}", metric)
    write_json(results_dir / "metrics.json", record)
    write_json(report_path, {**record, **report, "history": result.history})
    return record


def per_user_table(results: dict[str, UserMetrics], weights: dict[str, np.ndarray] | None = None,
                   labels: dict[str, Any] | None = None):
    """One row per evaluated user (sorted userID): `<split>_<metric@k>` float64 (NaN where the user is not
    evaluated in that split) and `weight_<slot>` (the learned per-user modality weights, when the model
    has them); `labels` go to the schema metadata under `viral.per_user`."""
    import pyarrow as pa

    users = np.unique(np.concatenate([result.users for result in results.values()]))
    columns: dict[str, np.ndarray] = {"userID": users.astype(np.int64)}
    for split, result in results.items():
        rows = np.searchsorted(users, result.users)
        for name, values in result.values.items():
            column = np.full(len(users), np.nan)
            column[rows] = values
            columns[f"{split}_{name}"] = column
    for slot, values in (weights or {}).items():
        columns[f"weight_{slot}"] = np.asarray(values, dtype=np.float32)[users]
    table = pa.table(columns)
    return table.replace_schema_metadata({"viral.per_user": json.dumps(labels or {})})


def weight_summary(weights: dict[str, np.ndarray], bins: int = 20) -> dict[str, Any]:
    """Distribution of each learned per-user modality weight: moments, quantiles and a histogram on
    edges shared by every slot (so the slots can be drawn on one axis); empty without weights."""
    if not weights:
        return {}
    low = min(float(values.min()) for values in weights.values())
    high = max(float(values.max()) for values in weights.values())
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    slots = {}
    for slot, values in weights.items():
        values = np.asarray(values, dtype=np.float64)
        quantiles = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
        slots[slot] = {"mean": float(values.mean()), "sd": float(values.std()), "min": float(values.min()),
                       "max": float(values.max()), **dict(zip(("q05", "q25", "median", "q75", "q95"), map(float, quantiles))),
                       "counts": np.histogram(values, edges)[0].tolist()}
    return {"users": len(next(iter(weights.values()))), "edges": edges.tolist(), "slots": slots}


def write_user_results(results_dir: str | Path, per_user: dict[str, UserMetrics], contribution: dict[str, Any],
                       weights: dict[str, np.ndarray], labels: dict[str, Any]) -> None:
    """`per_user.parquet` and `contribution.json` (the contribution metrics plus the weight summary) under
    `results_dir`; `labels` (model, dataset, seed, ...) head both so a file names the run it came from."""
    results_dir = Path(results_dir)
    write_parquet(results_dir / "per_user.parquet", per_user_table(per_user, weights, labels))
    write_json(results_dir / "contribution.json",
               {**labels, **contribution, "user_modality_weights": weight_summary(weights)})
