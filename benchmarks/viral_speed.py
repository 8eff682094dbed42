"""Seconds per training epoch and per full evaluation of VIRAL (faithful and scalable synergy) as ratios to
LightGCN measured in the same run, on a real interaction graph (an MMRec `.inter` file) with random 384-d
features; peak memory of each; and faithful VIRAL's peak memory on a Clothing-sized synthetic graph.

    python benchmarks/viral_speed.py ../shared/data/baby [--rounds 5] [--batch-size 1024] [--threads 0]
                                     [--fusion-width 64] [--precision fp32] [--device auto] [--no-clothing]

Timing only: the features are random, so the scores mean nothing. A VIRAL batch is a full-graph forward
(every item through the attention blocks and every node through the GCNs), so an epoch costs about
(number of batches) x (one batch). The three models are timed in interleaved rounds (one training batch
each per round, round 0 a warm-up) and each model's median batch is extrapolated to an epoch, so a load
change on a shared machine hits all three alike; the ratio of the fastest batches is printed too (on a
loaded machine the fastest round is the least disturbed one), and so is the ratio of the process CPU
seconds per batch (with `--threads 1`, the work done, far less sensitive to the machine's load than wall
time; with more threads it also counts threads spinning while they wait). Evaluation is timed once per model after a warm-up.
The process runs with the engine's CPU allocator tuning, as `fit()` does.

Matrix-product time: the dense matrix-product FLOPs of one training batch (forward and backward; counted
by torch.utils.flop_counter, sparse products left out as their cost is memory traffic) divided by the
device's fp32 matrix-product rate on the attention FFN's shapes (the median of one measurement per round). It is what the
products alone take at that rate, whatever else an implementation saves (`matmul_vs_lightgcn`: that
over LightGCN's batch): a ratio aim below it needs fewer FLOPs (other maths) or a faster device.

Peak memory: on CPU, each model's peak RSS (VmHWM) in a fresh child process that builds the
data and the model, runs two training batches and one evaluation; on CUDA,
torch.cuda.max_memory_allocated per model. The Clothing-sized run (39,387 users, 23,033 items, 278,677
random interactions, as MMRec's Clothing; ui/ii/uu built by viral.graphs) runs one faithful training
batch in a child process (CPU only; benchmarks/gpu_check.py does it on CUDA). Ends with one line of JSON.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from child_run import peak_rss_mb as own_peak_rss_mb  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode, flop_registry  # noqa: E402
from viral.data.mmrec import read_inter  # noqa: E402
from viral.models import model_class  # noqa: E402
from viral.train.cpu import keep_freed_memory_for_reuse  # noqa: E402
from viral.train.data import TrainData, add_graphs, from_interactions  # noqa: E402
from viral.train.evaluate import Evaluator  # noqa: E402
from viral.train.loop import build_model, resolve_device  # noqa: E402
from viral.train.precision import prepare_dense_blocks  # noqa: E402
from viral.train.sampling import NegativeSampler  # noqa: E402

FEATURE_DIM = 384
CLOTHING = {"n_users": 39387, "n_items": 23033, "n_interactions": 278677}  # MMRec's Clothing statistics
MODELS = ("lightgcn", "viral_faithful", "viral_scalable")


def with_graphs(data: TrainData, seed: int) -> TrainData:
    """Random 384-d text and visual features, and the graphs VIRAL and LightGCN read (the graphs stage's
    builders, default settings)."""
    inputs = data.inputs
    rng = np.random.default_rng(seed)
    for name in ("text", "visual"):
        inputs.features[name] = rng.standard_normal((inputs.n_items, FEATURE_DIM), dtype=np.float32)
    add_graphs(data, {"ui", "ii_viral", "uu"})
    return data


def load_data(folder: Path, seed: int) -> TrainData:
    """The folder's .inter split with random features and the graphs."""
    inter_files = sorted(folder.glob("*.inter"))
    if not inter_files:
        raise SystemExit(f"{folder}: no .inter file found")
    frame = read_inter(inter_files[0])
    n_users, n_items = int(frame.userID.max()) + 1, int(frame.itemID.max()) + 1
    return with_graphs(from_interactions(frame, n_users, n_items, folder.name), seed)


def synthetic_data(n_users: int, n_items: int, n_interactions: int, seed: int) -> TrainData:
    """Uniformly random distinct interactions, 80/10/10 split at random: a graph of a given size."""
    rng = np.random.default_rng(seed)
    codes = np.unique(rng.integers(0, n_users * n_items, int(n_interactions * 1.01)))[:n_interactions]
    frame = pd.DataFrame({"userID": codes // n_items, "itemID": codes % n_items,
                          "split": rng.choice(3, len(codes), p=[0.8, 0.1, 0.1]).astype(np.int8)})
    return with_graphs(from_interactions(frame, n_users, n_items, "clothing_sized"), seed)


def configs(fusion_width: int) -> dict[str, tuple[str, object]]:
    viral = model_class("viral").Config(fusion_width=fusion_width)
    return {
        "lightgcn": ("lightgcn", model_class("lightgcn").Config()),
        "viral_faithful": ("viral", replace(viral, synergy_mode="faithful")),
        "viral_scalable": ("viral", replace(viral, synergy_mode="scalable")),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Trainer:
    """One model, its optimiser and a fixed sequence of training batches (`batches` None: one shuffled
    epoch of all train pairs)."""

    def __init__(self, name: str, config, data: TrainData, device: torch.device, batch_size: int,
                 batches: int | None, precision: str, seed: int, compile: bool = False) -> None:
        self.model = build_model(model_class(name), data, config, seed).to(device)
        prepare_dense_blocks(self.model, precision, compile, device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=True)
        pairs = data.inputs.train_pairs
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(pairs))[: None if batches is None else batches * batch_size]
        negatives = NegativeSampler(pairs, data.inputs.n_items).sample(pairs[order, 0], rng)
        self.batches = torch.from_numpy(np.column_stack([pairs[order], negatives])).to(device).split(batch_size)
        self.device = device

    def run(self, first: int, count: int) -> float:
        """Seconds for `count` training batches starting at batch `first` (wrapping around); the process's
        CPU seconds over the same span are left in `cpu_seconds`."""
        _sync(self.device)
        start, cpu_start = time.perf_counter(), time.process_time()
        for index in range(first, first + count):
            batch = self.batches[index % len(self.batches)]
            loss = self.model.loss(batch[:, 0], batch[:, 1], batch[:, 2])["loss"]
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        _sync(self.device)
        self.cpu_seconds = time.process_time() - cpu_start
        return time.perf_counter() - start

    def step(self, index: int) -> float:
        return self.run(index, 1)


def _raw(formula):
    """`formula` as a custom FLOP formula that FlopCounterMode passes the operands themselves (the
    registered formulas take them already); wrapped, so torch's own registry entries stay untouched."""
    def counted(*args, **kwargs):
        return formula(*args, **kwargs)

    counted._get_raw = True
    return counted


def _dense_only(op):
    """`op`'s FLOP formula, counting nothing when an operand is sparse."""
    counted = flop_registry[op]

    def formula(*args, **kwargs):
        if any(isinstance(a, torch.Tensor) and a.layout != torch.strided for a in args):
            return 0
        return counted(*args, **kwargs)

    return _raw(formula)


def _flop_formulas() -> dict:
    aten = torch.ops.aten
    formulas = {op: _dense_only(op) for op in (aten.mm, aten.addmm)}
    # The CPU flash kernels take q, k, v (and grad_out first in the backward) as the CUDA ones do, but
    # torch registers no formula for them. A missing op fails loudly rather than counting zero.
    for cpu_op, counted_op in (("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention"),
                               ("_scaled_dot_product_flash_attention_for_cpu_backward",
                                "_scaled_dot_product_flash_attention_backward")):
        formulas[getattr(aten, cpu_op)] = _raw(flop_registry[getattr(aten, counted_op)])
    return formulas


def dense_gflop_per_batch(trainer: Trainer) -> float:
    """Dense matrix-product GFLOP of one training batch, forward and backward (sparse products excluded)."""
    with FlopCounterMode(display=False, custom_mapping=_flop_formulas()) as counter:
        trainer.run(0, 1)
    return counter.get_total_flops() / 1e9


def matmul_gflops(device: torch.device, repeats: int = 5, rows: int = 42300, width: int = 64, hidden: int = 256) -> float:
    """The device's fp32 matrix-product rate (GFLOP/s) on the attention blocks' FFN shapes: (rows, width) x
    (width, hidden) and (rows, hidden) x (hidden, width), the shapes most of VIRAL's dense FLOPs run in."""
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(rows, width, generator=generator), torch.randn(width, hidden, generator=generator)
    c, d = torch.randn(rows, hidden, generator=generator), torch.randn(hidden, width, generator=generator)
    a, b, c, d = (x.to(device) for x in (a, b, c, d))
    for _ in range(3):  # warm-up
        a @ b, c @ d
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b, c @ d
    _sync(device)
    return repeats * 2 * (2 * rows * width * hidden) / (time.perf_counter() - start) / 1e9


def eval_seconds(model, data: TrainData, device: torch.device) -> float:
    evaluator = Evaluator(data, device)
    evaluator.evaluate(model)  # warm-up
    _sync(device)
    start = time.perf_counter()
    evaluator.evaluate(model)
    _sync(device)
    return time.perf_counter() - start


def time_models(data: TrainData, device: torch.device, args) -> tuple[dict[str, dict], float]:
    """Per-model timings, and the device's fp32 matrix-product rate (GFLOP/s, the median over rounds)."""
    trainers = {key: Trainer(name, config, data, device, args.batch_size, args.rounds + 1, args.precision, args.seed)
                for key, (name, config) in configs(args.fusion_width).items()}
    seconds = {key: [] for key in trainers}
    cpu_seconds = {key: [] for key in trainers}
    rates = []
    for index in range(args.rounds + 1):
        for key, trainer in trainers.items():
            elapsed = trainer.step(index)
            if index:  # round 0 is the warm-up
                seconds[key].append(elapsed)
                cpu_seconds[key].append(trainer.cpu_seconds)
        if index:
            rates.append(matmul_gflops(device))
        print(f"round {index}: " + ", ".join(f"{key} {s[-1]:.3f} s" for key, s in seconds.items() if index), flush=True)
    n_batches = math.ceil(len(data.inputs.train_pairs) / args.batch_size)
    results = {}
    for key, trainer in trainers.items():
        per_batch, fastest = float(np.median(seconds[key])), float(np.min(seconds[key]))
        results[key] = {"seconds_per_batch": round(per_batch, 4), "fastest_batch": round(fastest, 4),
                        "cpu_seconds_per_batch": round(float(np.median(cpu_seconds[key])), 4),
                        "batches_per_epoch": n_batches, "seconds_per_epoch": round(per_batch * n_batches, 2),
                        "seconds_per_eval": round(eval_seconds(trainer.model, data, device), 3)}
        results[key]["dense_gflop_per_batch"] = round(dense_gflop_per_batch(trainer), 2)
        if device.type == "cuda":
            results[key]["peak_cuda_mb"] = peak_cuda_mb(trainer, data, device)
        print(f"{key}: {results[key]}", flush=True)
    return results, float(np.median(rates))


def peak_cuda_mb(trainer: Trainer, data: TrainData, device: torch.device) -> float:
    """Peak CUDA memory of two training batches and one evaluation of this model alone."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    trainer.run(0, 2)
    Evaluator(data, device).evaluate(trainer.model)
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def _peak_rss_child(queue, make_data, key: str, args, steps: int, evaluate: bool) -> None:
    """Child process body: build data and one model, run `steps` batches (and an evaluation), report."""
    keep_freed_memory_for_reuse()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = make_data()
    name, config = configs(args.fusion_width)[key]
    trainer = Trainer(name, config, data, torch.device("cpu"), args.batch_size, steps, args.precision, args.seed)
    seconds = trainer.run(0, steps) / steps
    if evaluate:
        Evaluator(data, torch.device("cpu")).evaluate(trainer.model)
    queue.put({"peak_rss_mb": round(own_peak_rss_mb(), 1),
               "seconds_per_batch": round(seconds, 3)})


def clothing_data(seed: int = 999) -> TrainData:
    return synthetic_data(**CLOTHING, seed=seed)


def peak_rss_mb(make_data, key: str, args, steps: int, evaluate: bool) -> dict:
    """Max RSS of a fresh (spawned) process that runs `key` on `make_data()`."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_peak_rss_child, args=(queue, make_data, key, args, steps, evaluate))
    child.start()
    result = queue.get()
    child.join()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="MMRec data folder with a <name>.inter file")
    parser.add_argument("--rounds", type=int, default=5, help="timed training batches per model (interleaved)")
    parser.add_argument("--batch-size", type=int, default=1024, help="the paper's 1024 (authors' code: 2048)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=999)
    parser.add_argument("--fusion-width", type=int, default=64,
                        help="models.viral.fusion_width (default 64, as params.yaml; 0: 384, as the code)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="train.precision")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--no-clothing", action="store_true", help="skip the Clothing-sized memory run")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    keep_freed_memory_for_reuse()
    start = time.perf_counter()
    data = load_data(args.folder, args.seed)
    inputs = data.inputs
    print(f"{args.folder.name}: {inputs.n_users} users, {inputs.n_items} items, {len(inputs.train_pairs)} train "
          f"pairs; data and graphs in {time.perf_counter() - start:.1f} s", flush=True)
    results, rate = time_models(data, device, args)
    print(f"fp32 matrix products: {rate:.0f} GFLOP/s", flush=True)
    base = results["lightgcn"]
    for key in MODELS[1:]:
        results[key]["epoch_vs_lightgcn"] = round(results[key]["seconds_per_epoch"] / base["seconds_per_epoch"], 1)
        results[key]["fastest_batch_vs_lightgcn"] = round(results[key]["fastest_batch"] / base["fastest_batch"], 1)
        results[key]["cpu_seconds_vs_lightgcn"] = round(
            results[key]["cpu_seconds_per_batch"] / base["cpu_seconds_per_batch"], 1)
        results[key]["eval_vs_lightgcn"] = round(results[key]["seconds_per_eval"] / base["seconds_per_eval"], 1)
        matmul = results[key]["dense_gflop_per_batch"] / rate
        results[key]["matmul_seconds_per_batch"] = round(matmul, 4)
        results[key]["matmul_vs_lightgcn"] = round(matmul / base["seconds_per_batch"], 1)
    if device.type == "cpu":
        for key in MODELS:
            results[key]["peak_rss_mb"] = peak_rss_mb(functools.partial(load_data, args.folder, args.seed), key, args, 2, True)["peak_rss_mb"]
            print(f"{key}: peak RSS {results[key]['peak_rss_mb']} MB", flush=True)
    summary = {
        "benchmark": "viral_speed", "dataset": args.folder.name, "device": str(device),
        "torch_threads": torch.get_num_threads(), "batch_size": args.batch_size, "timed_rounds": args.rounds,
        "fusion_width": args.fusion_width or FEATURE_DIM, "precision": args.precision,
        "fp32_matmul_gflops": round(rate, 1),
        "epoch_seconds": "median timed batch x batches per epoch",
        "n_users": inputs.n_users, "n_items": inputs.n_items, "n_train": len(inputs.train_pairs),
        **results,
    }
    if not args.no_clothing and device.type == "cpu":
        clothing = peak_rss_mb(clothing_data, "viral_faithful", args, 1, False)
        summary["clothing_sized_viral_faithful"] = {**CLOTHING, **clothing}
        print(f"Clothing-sized faithful VIRAL, one training batch: {clothing}", flush=True)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
