"""Train BPR and LightGCN on an MMRec data folder (its own split) and compare with MMRec's published
Baby numbers. MMRec publishes the best point of each model's grid chosen on TEST (its issue #64); we
search the same grid (or the part given on the command line), choose on VALIDATION Recall@20, and
report the chosen point's valid and test metrics, plus the test-chosen point for comparison.

    python benchmarks/mmrec_reference.py ../shared/data/baby [--models lightgcn] [--lightgcn-layers 3 4]
        [--lightgcn-reg 1e-2 1e-4] [--bpr-reg 1.0 0.1] [--threads 1] [--log benchmarks/out/mmrec_reference.jsonl]

Each finished grid point is appended to --log; a rerun reuses finished points (resume after interruption,
or grid parts run in parallel processes); --no-train only summarises what the log holds.
Ends with one JSON line: per model the chosen point, its metrics.json record, epochs and seconds.
"""
from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from viral.models import model_class  # noqa: E402
from viral.train.config import TrainConfig  # noqa: E402
from viral.train.data import load_mmrec_inputs  # noqa: E402
from viral.train.loop import build_model, fit  # noqa: E402
from viral.train.outputs import metrics_record  # noqa: E402

# MMRec README, Baby, full ranking; the acceptance floor is 3 % below.
PUBLISHED = {"bpr": {"recall@20": 0.0575, "ndcg@20": 0.0249}, "lightgcn": {"recall@20": 0.0754, "ndcg@20": 0.0328}}
FLOOR = {"bpr": 0.0558, "lightgcn": 0.0731}
MMREC_GRID = {
    "bpr": {"reg_weight": [2.0, 1.0, 0.1, 0.01, 0.001, 0.0001, 0.00001]},
    "lightgcn": {"n_layers": [1, 2, 3, 4], "reg_weight": [1e-2, 1e-3, 1e-4, 1e-5, 1e-6]},
}


def grid_points(args) -> list[tuple[str, dict]]:
    points = []
    if "lightgcn" in args.models:
        points += [("lightgcn", {"n_layers": layers, "reg_weight": reg})
                   for layers in args.lightgcn_layers for reg in args.lightgcn_reg]
    if "bpr" in args.models:
        points += [("bpr", {"reg_weight": reg}) for reg in args.bpr_reg]
    return points


def run_point(data, name: str, point: dict, train: TrainConfig, seed: int, dataset: str) -> dict:
    cls = model_class(name)
    model = build_model(cls, data, cls.Config(**point), seed)
    start = time.perf_counter()
    result = fit(model, data, train, seed, progress=False)
    record = metrics_record(result, name, dataset)
    return {"model": name, "point": point, "seed": seed, "seconds": round(time.perf_counter() - start, 1),
            "stopped_early": result.stopped_early, "record": record}


def load_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarise(runs: list[dict], name: str) -> dict:
    mine = [r for r in runs if r["model"] == name]
    chosen = max(mine, key=lambda r: r["record"]["valid"]["recall@20"])
    by_test = max(mine, key=lambda r: r["record"]["test"]["recall@20"])
    return {
        "chosen_on_valid": chosen["point"],
        **chosen["record"],
        "seconds": chosen["seconds"],
        "test_chosen_point": by_test["point"],
        "test_chosen_recall@20": by_test["record"]["test"]["recall@20"],
        "published": PUBLISHED[name],
        "floor_recall@20": FLOOR[name],
        "meets_floor": chosen["record"]["test"]["recall@20"] >= FLOOR[name],
        "grid": [{**r["point"], "valid_recall@20": r["record"]["valid"]["recall@20"],
                  "test_recall@20": r["record"]["test"]["recall@20"], "test_ndcg@20": r["record"]["test"]["ndcg@20"],
                  "best_epoch": r["record"]["best_epoch"], "epochs": r["record"]["epochs"],
                  "seconds": r["seconds"]} for r in mine],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--models", nargs="+", default=["bpr", "lightgcn"], choices=["bpr", "lightgcn"])
    parser.add_argument("--lightgcn-layers", nargs="+", type=int, default=MMREC_GRID["lightgcn"]["n_layers"])
    parser.add_argument("--lightgcn-reg", nargs="+", type=float, default=MMREC_GRID["lightgcn"]["reg_weight"])
    parser.add_argument("--bpr-reg", nargs="+", type=float, default=MMREC_GRID["bpr"]["reg_weight"])
    parser.add_argument("--seed", type=int, default=999)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--no-train", action="store_true",
                        help="train nothing: summarise the grid points already in --log")
    parser.add_argument("--log", type=Path, default=Path("benchmarks/out/mmrec_reference.jsonl"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    logging.getLogger("viral.train.loop").setLevel(logging.INFO)  # one line per epoch
    if args.threads:
        torch.set_num_threads(args.threads)
    train = TrainConfig(epochs=args.epochs, patience=args.patience, device=args.device, checkpoint=False)
    data = load_mmrec_inputs(args.folder, {"ui"})
    runs = load_log(args.log)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for name, point in grid_points(args):
        done = [r for r in runs if r["model"] == name and r["point"] == point and r["seed"] == args.seed]
        if done:
            print(f"{name} {point}: reused from {args.log}", flush=True)
            continue
        if args.no_train:
            print(f"{name} {point}: not run (--no-train)", flush=True)
            continue
        run = run_point(data, name, point, train, args.seed, data.name)
        runs.append(run)
        with open(args.log, "a") as handle:
            handle.write(json.dumps(run) + "\n")
        rec = run["record"]
        print(f"{name} {point}: valid R@20 {rec['valid']['recall@20']} test R@20 {rec['test']['recall@20']} "
              f"N@20 {rec['test']['ndcg@20']} best epoch {rec['best_epoch']}/{rec['epochs']} {run['seconds']} s",
              flush=True)
    wanted = {(name, json.dumps(point, sort_keys=True)) for name, point in grid_points(args)}
    runs = [r for r in runs if r["seed"] == args.seed and (r["model"], json.dumps(r["point"], sort_keys=True)) in wanted]
    summary = {
        "dataset": data.name, "seed": args.seed, "threads": torch.get_num_threads(),
        "device": "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu",
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "models": {name: summarise(runs, name) for name in args.models},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
