"""Speed of the training/evaluation engine on a real MMRec split (default: Baby).

    python benchmarks/engine_speed.py ../shared/data/baby [--epochs 3] [--layers 1 3] [--threads 2]

Measures seconds per training epoch (LightGCN at each layer count, and BPR), seconds per full
evaluation (valid + test over every user), and peak memory (ru_maxrss of this process, i.e. resident
set size). The in-run baseline is the straightforward PyTorch path MMRec takes: LightGCN propagating
with torch.sparse.mm on a COO matrix (autograd through it), per-tensor Adam, and valid and test
evaluated as two separate scoring passes. Also prints MMRec's own timings measured on this kind of
machine (2 threads; from issue 7) for reference. Baselines run first, then the engine's CPU allocator
tuning is switched on (process-wide) for our path. Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from viral.models.base import sparse_tensor  # noqa: E402
from viral.models.bpr import BPR  # noqa: E402
from viral.models.lightgcn import LightGCN  # noqa: E402
from viral.train.cpu import keep_freed_memory_for_reuse  # noqa: E402
from viral.train.data import TrainData, load_mmrec_inputs  # noqa: E402
from viral.train.evaluate import Evaluator  # noqa: E402
from viral.train.loop import build_model, train_epoch  # noqa: E402
from viral.train.sampling import NegativeSampler  # noqa: E402

MMREC_SECONDS = {"lightgcn_epoch": {1: 3.1, 3: 6.7}, "eval_valid_test": 9.0, "bpr_epoch": 0.9}


class CooLightGCN(LightGCN):
    """Baseline: the same model propagating with torch.sparse.mm on COO (torch's own backward)."""

    def __init__(self, inputs, config):
        super().__init__(inputs, config)
        self.coo = sparse_tensor(inputs.graphs["ui"])

    def propagate(self):
        ego = torch.cat([self.user_embedding, self.item_embedding])
        layer, total = ego, ego
        for _ in range(self.config.n_layers):
            layer = torch.sparse.mm(self.coo, layer)
            total = total + layer
        return ego, total / (self.config.n_layers + 1)


def epoch_seconds(model, data: TrainData, epochs: int, fused: bool) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    sampler = NegativeSampler(data.inputs.train_pairs, data.inputs.n_items)
    pairs = torch.from_numpy(data.inputs.train_pairs)
    rng = np.random.default_rng(0)
    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        train_epoch(model, optimizer, sampler, pairs, 2048, rng, epoch)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def eval_seconds(model, data: TrainData, repeats: int, separate_splits: bool) -> tuple[float, dict]:
    device = torch.device("cpu")
    if separate_splits:
        evaluators = [Evaluator(dataclasses.replace(data, held_out={split: pairs}), device)
                      for split, pairs in data.held_out.items()]
    else:
        evaluators = [Evaluator(data, device)]
    times, metrics = [], {}
    for _ in range(repeats):
        start = time.perf_counter()
        metrics = {}
        for evaluator in evaluators:
            metrics.update(evaluator.evaluate(model))
        times.append(time.perf_counter() - start)
    return float(np.median(times)), metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per configuration (median)")
    parser.add_argument("--layers", nargs="+", type=int, default=[1, 3])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_mmrec_inputs(args.folder, {"ui"})
    out: dict = {"dataset": data.name, "threads": torch.get_num_threads(), "epochs_timed": args.epochs,
                 "users_evaluated": data.inputs.n_users, "lightgcn": {}, "mmrec_reference_seconds": MMREC_SECONDS}
    # Baselines first: the engine's CPU allocator tuning (fit() applies it) is process-wide and stays.
    base_lightgcn = {layers: epoch_seconds(build_model(CooLightGCN, data, LightGCN.Config(n_layers=layers), 999),
                                           data, args.epochs, fused=False) for layers in args.layers}
    bpr_base = epoch_seconds(build_model(BPR, data, BPR.Config(), 999), data, args.epochs, fused=False)
    model = build_model(LightGCN, data, LightGCN.Config(n_layers=args.layers[0]), 999)
    base_eval, base_metrics = eval_seconds(model, data, args.epochs, separate_splits=True)
    out["allocator_tuned"] = keep_freed_memory_for_reuse()
    for layers in args.layers:
        ours = epoch_seconds(build_model(LightGCN, data, LightGCN.Config(n_layers=layers), 999), data,
                             args.epochs, fused=True)
        base = base_lightgcn[layers]
        row = {"seconds_per_epoch": round(ours, 3), "baseline_seconds_per_epoch": round(base, 3),
               "speedup_vs_baseline": round(base / ours, 2)}
        if layers in MMREC_SECONDS["lightgcn_epoch"]:
            row["speedup_vs_mmrec"] = round(MMREC_SECONDS["lightgcn_epoch"][layers] / ours, 2)
        out["lightgcn"][str(layers)] = row
        print(f"LightGCN {layers} layer(s): {row}", flush=True)
    ours, metrics = eval_seconds(model, data, args.epochs, separate_splits=False)
    out["eval"] = {"seconds_valid_test": round(ours, 3), "baseline_seconds_valid_test": round(base_eval, 3),
                   "speedup_vs_baseline": round(base_eval / ours, 2),
                   "speedup_vs_mmrec": round(MMREC_SECONDS["eval_valid_test"] / ours, 2),
                   "identical_metrics": metrics == base_metrics}
    print(f"evaluation: {out['eval']}", flush=True)
    bpr = epoch_seconds(build_model(BPR, data, BPR.Config(), 999), data, args.epochs, fused=True)
    out["bpr"] = {"seconds_per_epoch": round(bpr, 3), "baseline_seconds_per_epoch": round(bpr_base, 3),
                  "speedup_vs_baseline": round(bpr_base / bpr, 2),
                  "speedup_vs_mmrec": round(MMREC_SECONDS["bpr_epoch"] / bpr, 2)}
    print(f"BPR: {out['bpr']}", flush=True)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
