"""GPU check, in one go on a CUDA machine: the CUDA tests, LightGCN and VIRAL (faithful, scalable) seconds
per epoch on the Baby graph in fp32 and bf16 with peak GPU memory, faithful VIRAL on a Clothing-sized
graph, a torch.compile'd VIRAL, and fp32 CUDA against CPU on a small run.

    python benchmarks/gpu_check.py [../shared/data/baby] [--budget-s 420] [--no-compile]

Stages, in order (each later one is skipped, and says so, once `--budget-s` seconds are spent; the whole
script is sized for about 4 minutes on one H200):
1. `pytest -k cuda tests/models tests/train`: every test that needs CUDA (they skip on CPU machines).
2. Baby (an MMRec `.inter` folder; random 384-d features, ui/ii/uu built by viral.graphs): one warm-up
   epoch and one timed epoch per model and precision (`train.precision` fp32 | bf16; LightGCN has no dense
   blocks, so it runs once, in fp32, as the baseline of the ratios), all train pairs in batches of 1,024;
   one timed full evaluation; torch.cuda.max_memory_allocated per run.
3. Clothing-sized random graph (39,387 users, 23,033 items, 278,677 interactions): faithful VIRAL, one
   warm-up and three timed batches per precision, peak memory.
4. VIRAL faithful, bf16, with `train.compile`: seconds of the first (compiling) batch, then per batch.
5. fp32 CUDA vs CPU on a small random graph: the same initial weights give the same loss (relative
   difference < 1e-4) and gradients (< 1e-3, all parameters as one vector); `fit()` for 5 epochs on
   each device gives loss curves within 1e-3 and test Recall/NDCG@20 within 0.01.
Without CUDA it prints why and exits with status 0. Exit status 1 when a check fails. Ends with one line
of JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from viral.models import model_class  # noqa: E402
from viral.train.config import TrainConfig  # noqa: E402
from viral.train.loop import build_model, fit  # noqa: E402
from viral_speed import (  # noqa: E402
    CLOTHING,
    Trainer,
    clothing_data,
    configs,
    eval_seconds,
    load_data,
    synthetic_data,
)

SEED = 999
BATCH_SIZE = 1024
SMALL = {"n_users": 600, "n_items": 400, "n_interactions": 9000}  # the CPU-vs-CUDA graph
AGREEMENT_EPOCHS = 5
LOSS_RTOL, GRADIENT_RTOL, CURVE_RTOL, METRIC_ATOL = 1e-4, 1e-3, 1e-3, 0.01


class Budget:
    def __init__(self, seconds: float) -> None:
        self.start, self.seconds = time.perf_counter(), seconds

    def spent(self) -> float:
        return round(time.perf_counter() - self.start, 1)

    def allows(self, stage: str, report: dict) -> bool:
        if self.spent() < self.seconds:
            print(f"[{self.spent():6.1f} s] {stage}", flush=True)
            return True
        report[stage] = {"skipped": f"time budget of {self.seconds} s spent"}
        print(f"skipping {stage}: the time budget is spent", flush=True)
        return False


def cuda_tests() -> dict:
    # The project's addopts name the pytest-timeout plugin, which a bare GPU environment may lack.
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-o", "addopts=", "--import-mode=importlib",
               "-m", "not slow", "-k", "cuda", "-p", "no:cacheprovider", "tests/models", "tests/train"]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return {"ok": False, "summary": "pytest did not finish within 300 s"}
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    print(done.stdout[-3000:], flush=True)
    return {"ok": done.returncode == 0, "summary": tail}


def _peak_mb(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def _fresh_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def time_epoch(key: str, data, precision: str, device: torch.device) -> dict:
    name, config = configs(64)[key]
    _fresh_peak(device)
    trainer = Trainer(name, config, data, device, BATCH_SIZE, None, precision, SEED)
    n_batches = len(trainer.batches)
    trainer.run(0, n_batches)  # warm-up epoch (kernel selection, allocator)
    seconds = trainer.run(0, n_batches)
    result = {"seconds_per_epoch": round(seconds, 3), "batches": n_batches,
              "seconds_per_eval": round(eval_seconds(trainer.model, data, device), 3), "peak_cuda_mb": _peak_mb(device)}
    print(f"  {key} {precision}: {result}", flush=True)
    return result


def baby_timings(folder: Path, device: torch.device) -> dict:
    data = load_data(folder, SEED)
    out = {"lightgcn": {"fp32": time_epoch("lightgcn", data, "fp32", device)}}
    for key in ("viral_faithful", "viral_scalable"):
        out[key] = {precision: time_epoch(key, data, precision, device) for precision in ("fp32", "bf16")}
        for precision, result in out[key].items():
            result["epoch_vs_lightgcn"] = round(result["seconds_per_epoch"] / out["lightgcn"]["fp32"]["seconds_per_epoch"], 1)
    return out


def clothing_sized(device: torch.device) -> dict:
    data = clothing_data(SEED)
    name, config = configs(64)["viral_faithful"]
    out = dict(CLOTHING)
    for precision in ("fp32", "bf16"):
        _fresh_peak(device)
        trainer = Trainer(name, config, data, device, BATCH_SIZE, 4, precision, SEED)
        trainer.run(0, 1)
        out[precision] = {"seconds_per_batch": round(trainer.run(1, 3) / 3, 4), "peak_cuda_mb": _peak_mb(device)}
        print(f"  clothing-sized viral_faithful {precision}: {out[precision]}", flush=True)
        del trainer
    return out


def compiled(folder: Path, device: torch.device) -> dict:
    data = load_data(folder, SEED)
    name, config = configs(64)["viral_faithful"]
    try:
        trainer = Trainer(name, config, data, device, BATCH_SIZE, 6, "bf16", SEED, compile=True)
        first = trainer.run(0, 1)
        trainer.run(1, 1)
        per_batch = trainer.run(2, 4) / 4
    except Exception as err:  # report, keep the other stages' figures
        return {"ok": False, "error": f"{type(err).__name__}: {err}"[:1000]}
    batches = math.ceil(len(data.inputs.train_pairs) / BATCH_SIZE)
    out = {"ok": True, "first_batch_seconds": round(first, 2), "seconds_per_batch": round(per_batch, 4),
           "seconds_per_epoch": round(per_batch * batches, 3)}
    print(f"  compiled viral_faithful bf16: {out}", flush=True)
    return out


def _loss_and_gradient(model, batch):
    loss = model.loss(batch[:, 0], batch[:, 1], batch[:, 2])["loss"]
    gradients = torch.autograd.grad(loss, list(model.parameters()))
    return loss.item(), torch.cat([g.flatten().cpu() for g in gradients])


def cpu_agreement(device: torch.device, keys: tuple[str, ...] = ("lightgcn", "viral_faithful", "viral_scalable")) -> dict:
    """fp32 `device` against CPU: one step from the same weights, then AGREEMENT_EPOCHS of fit() on each."""
    data = synthetic_data(**SMALL, seed=SEED)
    out, ok = {}, True
    for key in keys:
        name, config = configs(64)[key]
        cls = model_class(name)
        cpu_model = build_model(cls, data, config, SEED)
        cuda_model = build_model(cls, data, config, SEED).to(device)
        pairs = data.inputs.train_pairs[:512]
        negatives = np.random.default_rng(0).integers(0, data.inputs.n_items, len(pairs))
        batch = torch.from_numpy(np.column_stack([pairs, negatives]))
        cpu_loss, cpu_gradient = _loss_and_gradient(cpu_model, batch)
        cuda_loss, cuda_gradient = _loss_and_gradient(cuda_model, batch.to(device))
        step = {"loss_rel": abs(cuda_loss - cpu_loss) / abs(cpu_loss),
                "gradient_rel": ((cuda_gradient - cpu_gradient).norm() / cpu_gradient.norm()).item()}
        runs = {}
        for name_device in ("cpu", str(device)):
            model = build_model(cls, data, config, SEED)
            train = TrainConfig(epochs=AGREEMENT_EPOCHS, batch_size=256, patience=50, device=name_device,
                                checkpoint=False)
            runs[name_device] = fit(model, data, train, SEED, progress=False)
        cpu_run, cuda_run = runs["cpu"], runs[str(device)]
        curve_rel = max(abs(a["loss"] - b["loss"]) / abs(a["loss"]) for a, b in zip(cpu_run.history, cuda_run.history))
        metric_diff = max(abs(cpu_run.test[m] - cuda_run.test[m]) for m in ("recall@20", "ndcg@20"))
        passed = (step["loss_rel"] < LOSS_RTOL and step["gradient_rel"] < GRADIENT_RTOL and curve_rel < CURVE_RTOL
                  and metric_diff <= METRIC_ATOL)
        ok &= passed
        out[key] = {**{k: float(f"{v:.3g}") for k, v in step.items()}, "loss_curve_rel": float(f"{curve_rel:.3g}"),
                    "test_metric_abs_diff": round(metric_diff, 4), "cpu_test_recall@20": cpu_run.test["recall@20"],
                    "cuda_test_recall@20": cuda_run.test["recall@20"], "ok": passed}
        print(f"  {key}: {out[key]}", flush=True)
    out["ok"] = ok
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", default=ROOT.parent / "shared" / "data" / "baby",
                        help="MMRec data folder with a <name>.inter file (default ../shared/data/baby)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="start no new stage after this many seconds")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile stage")
    args = parser.parse_args(argv)
    report: dict = {"benchmark": "gpu_check"}
    if not torch.cuda.is_available():
        message = (f"no CUDA device visible to torch {torch.__version__} (CUDA build: {torch.version.cuda}); "
                   "nothing to check. Run this on a GPU machine in the GPU environment (README, 'GPU training').")
        print(message, file=sys.stderr)
        print(json.dumps({**report, "cuda": False, "message": message}))
        return 0
    device = torch.device("cuda")
    properties = torch.cuda.get_device_properties(device)
    report.update({"cuda": True, "gpu": properties.name, "gpu_memory_gb": round(properties.total_memory / 2**30, 1),
                   "torch": torch.__version__, "cuda_version": torch.version.cuda})
    print(f"{properties.name}, torch {torch.__version__}, CUDA {torch.version.cuda}", flush=True)
    budget = Budget(args.budget_s)
    stages = [("cuda_tests", cuda_tests), ("baby", lambda: baby_timings(args.folder, device)),
              ("clothing_sized_viral_faithful", lambda: clothing_sized(device)),
              ("cpu_vs_cuda_fp32", lambda: cpu_agreement(device))]
    if not args.no_compile:
        stages.append(("compiled_viral_faithful_bf16", lambda: compiled(args.folder, device)))
    for stage, run in stages:
        if budget.allows(stage, report):
            report[stage] = run()
    report["seconds"] = budget.spent()
    failed = [stage for stage in ("cuda_tests", "cpu_vs_cuda_fp32", "compiled_viral_faithful_bf16")
              if report.get(stage, {}).get("ok") is False]
    report["ok"] = not failed
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    print(json.dumps(report))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
