"""Seconds per training epoch and per full evaluation of VIRAL (faithful and scalable synergy) next to
LightGCN, on a real interaction graph (an MMRec `.inter` file) with random 384-d features.

    python benchmarks/viral_speed.py ../shared/data/baby [--batches 3] [--batch-size 1024] [--device auto]
                                     [--fusion-width 0]

Timing only: the features are random, so the scores mean nothing. A VIRAL batch is a full-graph forward
(every item through the attention blocks and every node through the GCNs), so an epoch costs about
(number of batches) x (one batch); we time `--batches` batches after one warm-up batch and extrapolate
to a whole epoch (said so in the output). Evaluation is timed in full, once, after a warm-up run.
Peak memory: process max RSS from resource.getrusage (CPU; it only grows, so it is the max over all
models), or torch.cuda.max_memory_allocated per model on CUDA. Ends with one line of JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from viral.data.mmrec import read_inter  # noqa: E402
from viral.graphs.item_item import item_item_graph  # noqa: E402
from viral.graphs.user_item import normalized_adjacency  # noqa: E402
from viral.graphs.user_user import user_user_graph  # noqa: E402
from viral.models import model_class  # noqa: E402
from viral.train.data import TrainData, from_interactions  # noqa: E402
from viral.train.evaluate import Evaluator  # noqa: E402
from viral.train.loop import build_model, resolve_device  # noqa: E402
from viral.train.sampling import NegativeSampler  # noqa: E402

FEATURE_DIM = 384


def load_data(folder: Path, seed: int) -> TrainData:
    """The folder's .inter split, random features, and the ui/ii/uu graphs built by viral.graphs."""
    inter_files = sorted(folder.glob("*.inter"))
    if not inter_files:
        raise SystemExit(f"{folder}: no .inter file found")
    frame = read_inter(inter_files[0])
    n_users, n_items = int(frame.userID.max()) + 1, int(frame.itemID.max()) + 1
    data = from_interactions(frame, n_users, n_items, folder.name)
    inputs = data.inputs
    rng = np.random.default_rng(seed)
    for name in ("text", "visual"):
        inputs.features[name] = rng.standard_normal((n_items, FEATURE_DIM), dtype=np.float32)
    start = time.perf_counter()
    inputs.graphs["ui"] = normalized_adjacency(inputs.train_pairs, n_users, n_items)
    inputs.graphs["ii_viral"] = item_item_graph(inputs.features, k=10)
    inputs.graphs["uu"] = user_user_graph(inputs.train_pairs, n_users, n_items, k=10)
    print(f"{folder.name}: {n_users} users, {n_items} items, {len(inputs.train_pairs)} train pairs; "
          f"graphs built in {time.perf_counter() - start:.1f} s", flush=True)
    return data


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_model(name: str, config, data: TrainData, device: torch.device, batch_size: int, batches: int,
               seed: int) -> dict:
    model = build_model(model_class(name), data, config, seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    pairs = data.inputs.train_pairs
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))[: (batches + 1) * batch_size]
    negatives = NegativeSampler(pairs, data.inputs.n_items).sample(pairs[order, 0], rng)
    batch_tensors = torch.from_numpy(np.column_stack([pairs[order], negatives])).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step_seconds = []
    for index in range(batches + 1):  # batch 0 is the warm-up
        batch = batch_tensors[index * batch_size : (index + 1) * batch_size]
        _sync(device)
        start = time.perf_counter()
        loss = model.loss(batch[:, 0], batch[:, 1], batch[:, 2])["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        step_seconds.append(time.perf_counter() - start)
    per_batch = float(np.mean(step_seconds[1:]))
    n_batches = math.ceil(len(pairs) / batch_size)
    evaluator = Evaluator(data, device)
    evaluator.evaluate(model)  # warm-up
    _sync(device)
    start = time.perf_counter()
    evaluator.evaluate(model)
    _sync(device)
    result = {
        "seconds_per_batch": round(per_batch, 4),
        "batches_per_epoch": n_batches,
        "seconds_per_epoch_extrapolated": round(per_batch * n_batches, 2),
        "seconds_per_eval": round(time.perf_counter() - start, 3),
        "pairs_per_second": round(batch_size / per_batch, 1),
    }
    if device.type == "cuda":
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    print(f"{name} {getattr(config, 'synergy_mode', '')}: {result}", flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="MMRec data folder with a <name>.inter file")
    parser.add_argument("--batches", type=int, default=3, help="timed training batches per model")
    parser.add_argument("--batch-size", type=int, default=1024, help="the paper's 1024 (authors' code: 2048)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=999)
    parser.add_argument("--fusion-width", type=int, default=64,
                        help="models.viral.fusion_width (default 64, as params.yaml; 0: 384, as the code)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = load_data(args.folder, args.seed)
    viral_config = model_class("viral").Config(fusion_width=args.fusion_width)
    runs = {
        "lightgcn": ("lightgcn", model_class("lightgcn").Config()),
        "viral_faithful": ("viral", replace(viral_config, synergy_mode="faithful")),
        "viral_scalable": ("viral", replace(viral_config, synergy_mode="scalable")),
    }
    results = {key: time_model(name, config, data, device, args.batch_size, args.batches, args.seed)
               for key, (name, config) in runs.items()}
    base = results["lightgcn"]
    for key in ("viral_faithful", "viral_scalable"):
        results[key]["epoch_vs_lightgcn"] = round(
            results[key]["seconds_per_epoch_extrapolated"] / base["seconds_per_epoch_extrapolated"], 1)
        results[key]["eval_vs_lightgcn"] = round(results[key]["seconds_per_eval"] / base["seconds_per_eval"], 1)
    summary = {
        "benchmark": "viral_speed", "dataset": args.folder.name, "device": str(device),
        "torch_threads": torch.get_num_threads(), "batch_size": args.batch_size, "timed_batches": args.batches,
        "fusion_width": args.fusion_width or FEATURE_DIM,
        "epoch_seconds": "extrapolated from the timed batches",
        "n_users": data.inputs.n_users, "n_items": data.inputs.n_items, "n_train": len(data.inputs.train_pairs),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
