"""Seconds per training epoch, seconds per valid+test evaluation and peak memory of every registered
model, each at its own published training point (batch size, negatives), on one graph.

    python benchmarks/baseline_speed.py ../shared/data/baby [--models dragon freedom] [--threads 2]
                                        [--budget 60] [--clothing] [--precision bf16]

Timing only: the features are random (4096-d visual, 384-d text: the widths of MMRec's CNN image
features and Sentence-BERT text features), so the scores mean nothing. The graph is the folder's real
split, or with `--clothing` a random Clothing-sized one (39,387 users, 23,033 items, ~197k train pairs).
Each model runs in its own child process, so its peak memory (VmHWM: resident set size, Python,
torch and the inputs included) is its own. An epoch is the model's `pre_epoch` hook, the negative
sampling and every batch (the first one, where some models rebuild a graph, included); after one
warm-up batch, batches are timed until `--budget` seconds have passed, and an unfinished epoch is
extrapolated (said so per model). Evaluation scores every user
against every item for valid and test, timed in full after a warm-up run. MMRec's own code on this
kind of machine (2 threads, same inputs) is given where measured (issues 7 and 11), with our speed-up.
Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from child_run import peak_rss_mb, run_child  # noqa: E402
from viral.models import MODELS, model_class  # noqa: E402
from viral.train.data import TrainData, add_graphs, from_interactions, load_mmrec_inputs  # noqa: E402
from viral.train.evaluate import Evaluator  # noqa: E402
from viral.train.loop import build_model  # noqa: E402
from viral.train.precision import prepare_dense_blocks  # noqa: E402
from viral.train.sampling import NegativeSampler  # noqa: E402

FEATURE_DIMS = {"visual": 4096, "text": 384}
# MMRec's code on the dev machine kind, 2 threads, Baby, random features of these widths (seconds).
MMREC_EPOCH = {"bpr": 0.9, "lightgcn": 6.7, "freedom": 25.8, "dragon": 110.8}
MMREC_EVAL = {"bpr": 9.0, "lightgcn": 9.0, "freedom": 9.6, "dragon": 9.6}  # 9.6-10.1 s: the low end
CLOTHING = {"users": 39387, "items": 23033, "train_pairs": 197338}


def clothing_sized(seed: int) -> TrainData:
    """A random catalogue of Clothing's size: power-law item popularity, >= 5 interactions per user,
    MMRec's per-user split rule (n < 10: n-2/1/1, else 80/10/10)."""
    from viral.data.split import per_user_split

    rng = np.random.default_rng(seed)
    per_user = 5 + rng.geometric(0.45, CLOTHING["users"]) - 1
    users = np.repeat(np.arange(CLOTHING["users"]), per_user)
    popularity = 1.0 / np.arange(1, CLOTHING["items"] + 1) ** 0.8
    items = rng.choice(CLOTHING["items"], size=len(users), p=popularity / popularity.sum())
    frame = pd.DataFrame({"userID": users, "itemID": items}).drop_duplicates(ignore_index=True)
    frame["split"] = per_user_split(frame["userID"].to_numpy(), seed)
    return from_interactions(frame, CLOTHING["users"], CLOTHING["items"], "clothing-sized")


def load(folder: Path | None, needs: frozenset[str], seed: int) -> TrainData:
    data = clothing_sized(seed) if folder is None else load_mmrec_inputs(folder)
    rng = np.random.default_rng(seed)
    for name in sorted(set(FEATURE_DIMS) & needs):
        data.inputs.features[name] = rng.standard_normal((data.inputs.n_items, FEATURE_DIMS[name]), dtype=np.float32)
    add_graphs(data, needs)
    return data


def epoch_seconds(model, data: TrainData, budget: float, seed: int) -> dict:
    """One epoch as the engine runs it (viral.train.loop.train_epoch), timed batch by batch.

    A warm-up epoch's first batch runs before (allocator, lazy initialisation); the timed epoch then
    starts with its `pre_epoch` hook, so work a model does once per epoch (a graph rebuilt in the first
    batch, as LATTICE's) is counted. An epoch cut short by `budget` is extrapolated as the first batch
    plus the mean of the others for every remaining batch."""
    point = model.config.train
    optimizer = torch.optim.Adam(model.parameters(), lr=point.lr, weight_decay=point.weight_decay, fused=True)
    rng = np.random.default_rng(seed)
    pairs = torch.from_numpy(data.inputs.train_pairs)
    sampler = NegativeSampler(data.inputs.train_pairs, data.inputs.n_items) if point.negatives else None

    def plan(epoch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        model.pre_epoch(epoch, rng)
        model.train()
        order = torch.from_numpy(rng.permutation(len(pairs)))
        negatives = None if sampler is None else torch.from_numpy(sampler.sample(pairs[order, 0].numpy(), rng))
        return order, negatives

    def step(order: torch.Tensor, negatives: torch.Tensor | None, start_row: int) -> None:
        rows = order[start_row : start_row + point.batch_size]
        batch = pairs[rows]
        neg = None if negatives is None else negatives[start_row : start_row + point.batch_size]
        losses = model.loss(batch[:, 0], batch[:, 1], neg)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()

    step(*plan(0), 0)  # warm-up, not timed
    start = time.perf_counter()
    order, negatives = plan(1)
    setup = time.perf_counter() - start
    starts = list(range(0, len(order), point.batch_size))
    seconds = []
    for start_row in starts:
        begin = time.perf_counter()
        step(order, negatives, start_row)
        seconds.append(time.perf_counter() - begin)
        if sum(seconds) > budget and len(seconds) > 1:
            break
    rest = seconds[1:] or seconds
    epoch = setup + seconds[0] + sum(rest) / len(rest) * (len(starts) - 1)
    return {"seconds_per_epoch": round(epoch, 3), "seconds_first_batch": round(seconds[0], 4),
            "seconds_per_batch": round(sum(rest) / len(rest), 4), "batches_per_epoch": len(starts),
            "batches_timed": len(seconds), "extrapolated": len(seconds) < len(starts),
            "pre_epoch_and_sampling_seconds": round(setup, 3)}


def eval_seconds(model, data: TrainData) -> float:
    evaluator = Evaluator(data, torch.device("cpu"))
    evaluator.evaluate(model)  # warm-up
    start = time.perf_counter()
    evaluator.evaluate(model)
    return time.perf_counter() - start


def measure(name: str, folder: Path | None, budget: float, seed: int, precision: str) -> dict:
    cls = model_class(name)
    config = cls.Config()
    data = load(folder, cls.inputs_needed(config), seed)
    model = build_model(cls, data, config, seed)
    prepare_dense_blocks(model, precision, False, torch.device("cpu"))
    row = {"batch_size": config.train.batch_size, "precision": precision, **epoch_seconds(model, data, budget, seed),
           "seconds_per_eval": round(eval_seconds(model, data), 3)}
    row["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="an MMRec folder (its .inter split), e.g. ../shared/data/baby")
    parser.add_argument("--models", nargs="+", default=sorted(MODELS), choices=sorted(MODELS))
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads per model")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of timed batches per model")
    parser.add_argument("--clothing", action="store_true", help="a random Clothing-sized graph instead")
    parser.add_argument("--seed", type=int, default=999)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="train.precision: bf16 runs each model's dense blocks under autocast")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = None if args.clothing else args.folder
    if args.child:
        print(json.dumps(measure(args.child, folder, args.budget, args.seed, args.precision)))
        return
    results = {}
    for name in args.models:
        command = [sys.executable, __file__, str(args.folder), "--child", name, "--threads", str(args.threads),
                   "--budget", str(args.budget), "--seed", str(args.seed), "--precision", args.precision,
                   *(["--clothing"] if args.clothing else [])]
        row = run_child(command)
        if "error" not in row:
            if name in MMREC_EPOCH and not args.clothing and args.precision == "fp32":
                row["mmrec_seconds_per_epoch"] = MMREC_EPOCH[name]
                row["epoch_speedup_vs_mmrec"] = round(MMREC_EPOCH[name] / row["seconds_per_epoch"], 2)
                row["mmrec_seconds_per_eval"] = MMREC_EVAL[name]
                row["eval_speedup_vs_mmrec"] = round(MMREC_EVAL[name] / row["seconds_per_eval"], 2)
        results[name] = row
        print(f"{name}: {results[name]}", flush=True)
    print(json.dumps({"graph": "clothing-sized" if args.clothing else args.folder.name, "threads": args.threads,
                      "feature_dims": FEATURE_DIMS, "models": results}))


if __name__ == "__main__":
    main()
