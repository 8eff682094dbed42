"""The paper's Table 2 ablations plus LightGCN, several seeds each: mean ± sd of test Recall@20 / NDCG@20.

    python benchmarks/table2.py [--dataset synthetic] [--seeds 999 1000 1001] [--rows VIRAL Pooling ...]
                                [--runner dvc|direct] [--epochs N]

Runners:
- dvc (default): one `dvc exp run -S ...` per (row, seed), exactly what a user would type; the visual
  rows re-run encode + graphs, the fusion rows only train. Metrics are read from results/metrics.json
  after each run; at the end the top-level knobs it set are put back in params.yaml (only those
  lines: other edits made meanwhile are kept).
- direct: calls the library on the artifacts already in data/ (no DVC); only rows whose `visual`
  matches the one data/features/<dataset>/visual.parquet was encoded from can run (LightGCN reads no
  features), the others are reported as skipped. Useful to check the script quickly (`--epochs 2`).
Prints a markdown table and ends with one line of JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from viral.io import atomic_path  # noqa: E402

BASE = {"model": "viral", "fusion": "viral", "visual": "vlm_title"}
# Table 2 of the paper, in its order: row label -> the top-level knobs that differ from VIRAL.
ROWS: dict[str, dict[str, str]] = {
    "Original visual": {"visual": "original"},
    "VLM w/o title": {"visual": "vlm_plain"},
    "Pooling": {"fusion": "pooling"},
    "Concat": {"fusion": "concat"},
    "Weighted concat": {"fusion": "weighted_concat"},
    "VIRAL": {},
    "LightGCN": {"model": "lightgcn"},
}
METRICS = ("recall@20", "ndcg@20")

Runner = Callable[[dict[str, str], int], dict[str, float]]


def row_params(row: str, dataset: str, seed: int) -> dict[str, str]:
    return {"dataset": dataset, **BASE, **ROWS[row], "seed": str(seed)}


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def markdown_table(results: dict[str, list[dict[str, float]]], notes: dict[str, str]) -> str:
    lines = ["| Row | seeds | " + " | ".join(f"test {m}" for m in METRICS) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for row in ROWS:
        if row in results and results[row]:
            cells = ["{:.4f} ± {:.4f}".format(*mean_sd([run[m] for run in results[row]])) for m in METRICS]
            lines.append(f"| {row} | {len(results[row])} | " + " | ".join(cells) + " |")
        elif row in notes:
            lines.append(f"| {row} | 0 | " + " | ".join([notes[row]] * len(METRICS)) + " |")
    return "\n".join(lines)


def restore_knobs(current: str, original: str, keys: list[str]) -> str:
    """`current` with each top-level `key: value` line of `keys` put back as it is in `original`."""
    for key in keys:
        pattern = re.compile(rf"^{re.escape(key)}:.*$", re.MULTILINE)
        before = pattern.search(original)
        if before is not None:
            current = pattern.sub(lambda _: before.group(0), current, count=1)
    return current


def dvc_runner(root: Path) -> Runner:
    def run(params: dict[str, str], seed: int) -> dict[str, float]:
        command = ["dvc", "exp", "run", *(arg for key, value in params.items() for arg in ("-S", f"{key}={value}"))]
        print("$ " + " ".join(command), flush=True)
        done = subprocess.run(command, cwd=root)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}")
        metrics = json.loads((root / "results" / "metrics.json").read_text())
        return {m: float(metrics["test"][m]) for m in METRICS}

    return run


def direct_runner(root: Path, epochs: int | None) -> Runner:
    from viral.models import model_class
    from viral.params import load_params
    from viral.train.data import load_prepared_inputs
    from viral.train.loop import build_model, fit
    from viral.train.run import resolved_model_config

    from viral.encode.store import read_metadata

    params = load_params(root / "params.yaml")

    def run(row: dict[str, str], seed: int) -> dict[str, float]:
        built = read_metadata(root / "data/features" / row["dataset"] / "visual.parquet").get("source")
        if row["model"] != "lightgcn" and row["visual"] != built:
            raise LookupError(f"needs visual={row['visual']} features (data/features has {built}); use --runner dvc")
        knobs = {key: (int(value) if key == "seed" else value) for key, value in row.items()}
        run_params = replace(params, **knobs, train=replace(params.train, epochs=epochs or params.train.epochs))
        cls = model_class(run_params.model)
        data = load_prepared_inputs(root / "data/prepared" / run_params.dataset, root / "data/features" / run_params.dataset,
                                    root / "data/graphs" / run_params.dataset, cls.requires)
        model = build_model(cls, data, resolved_model_config(run_params), seed)
        result = fit(model, data, run_params.train, seed, progress=False)
        return {m: float(result.test[m]) for m in METRICS}

    return run


def run_table(rows: list[str], dataset: str, seeds: list[int], runner: Runner):
    results: dict[str, list[dict[str, float]]] = {}
    notes: dict[str, str] = {}
    for row in rows:
        for seed in seeds:
            try:
                metrics = runner(row_params(row, dataset, seed), seed)
            except LookupError as err:
                notes[row] = f"skipped: {err}"
                print(f"{row}: {notes[row]}", flush=True)
                break
            except (RuntimeError, ValueError, OSError) as err:
                notes[row] = f"failed: {err}".replace("|", "/").splitlines()[0]
                print(f"{row} seed {seed}: {notes[row]}", flush=True)
                break
            results.setdefault(row, []).append(metrics)
            print(f"{row} seed {seed}: {metrics}", flush=True)
    return results, notes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--seeds", type=int, nargs="+", default=[999, 1000, 1001])
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--runner", choices=["dvc", "direct"], default="dvc")
    parser.add_argument("--epochs", type=int, default=None, help="direct runner: cap train.epochs")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    params_file = ROOT / "params.yaml"
    original = params_file.read_text()
    runner = dvc_runner(ROOT) if args.runner == "dvc" else direct_runner(ROOT, args.epochs)
    try:
        results, notes = run_table(args.rows, args.dataset, args.seeds, runner)
    finally:
        if args.runner == "dvc":  # `dvc exp run -S` leaves the last run's knobs applied to params.yaml
            current = params_file.read_text()
            restored = restore_knobs(current, original, list(row_params("VIRAL", args.dataset, 0)))
            if restored != current:
                with atomic_path(params_file) as tmp:
                    tmp.write_text(restored)
    print(markdown_table(results, notes))
    summary = {"benchmark": "table2", "dataset": args.dataset, "runner": args.runner, "seeds": args.seeds,
               "seconds": round(time.perf_counter() - start, 1), "rows": {}}
    for row in args.rows:
        if results.get(row):
            summary["rows"][row] = {m: dict(zip(("mean", "sd"), (round(x, 5) for x in mean_sd([r[m] for r in results[row]]))))
                                    for m in METRICS} | {"runs": len(results[row])}
        else:
            summary["rows"][row] = {"note": notes.get(row, "not run")}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
