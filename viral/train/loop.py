"""The training loop: shuffled BPR triples, Adam, evaluation every `eval_every` epochs, early stopping on
the model's validation metric (MMRec's rule), best-model tracking and a per-epoch resumable checkpoint.

What differs between models (lr, batch size, weight decay, lr schedule, selection metric, sampled or
in-batch negatives) is the model's `TrainingPoint`, resolved once by `TrainConfig.point`."""
from __future__ import annotations

import dataclasses
import logging
import random
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from viral.models.base import Recommender
from viral.train.checkpoint import load_state, save_state
from viral.train.config import TrainConfig, TrainingPoint
from viral.train.cpu import keep_freed_memory_for_reuse
from viral.train.data import TrainData
from viral.train.evaluate import Evaluator
from viral.train.precision import prepare_dense_blocks
from viral.train.sampling import NegativeSampler

log = logging.getLogger(__name__)

# Knobs that may change between an interrupted run and its resumption without changing the result.
RESUMABLE_KNOBS = ("epochs", "eval_batch_size", "device", "threads", "checkpoint")


@dataclass
class FitResult:
    best_epoch: int  # 1-based, as epochs are reported
    epochs: int
    valid: dict[str, float]
    test: dict[str, float]
    history: list[dict[str, Any]]
    seconds_per_epoch: float
    seconds_per_eval: float
    stopped_early: bool
    n_parameters: int
    device: str
    point: TrainingPoint


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device: {name!r} requested but CUDA is not available")
    return device


def seed_everything(seed: int) -> None:
    """Seed every RNG a model might use (python, numpy's legacy global, torch CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_model(model_class: type[Recommender], data: TrainData, config, seed: int) -> Recommender:
    """Construct a model right after seeding, so its initial weights depend on the seed only."""
    seed_everything(seed)
    return model_class(data.inputs, config)


def _crc(*arrays: np.ndarray) -> int:
    checksum = 0
    for array in arrays:
        checksum = zlib.crc32(np.ascontiguousarray(array).tobytes(), checksum)
    return checksum


def _graph_crc(graph) -> int:
    csr = graph.tocsr()
    return _crc(csr.indptr, csr.indices, csr.data)


def _source_crc() -> int:
    """Checksum of the engine and model sources (the train stage's code deps): a checkpoint written by
    other code is not resumed, so a fixed bug never hides behind a finished old run."""
    checksum = 0
    for package in ("models", "train"):
        for path in sorted((Path(__file__).resolve().parents[1] / package).glob("*.py")):
            checksum = zlib.crc32(path.read_bytes(), checksum)
    return checksum


def fingerprint(model: Recommender, data: TrainData, config: TrainConfig, seed: int) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed: code, model, its config, the resolved training
    point, engine knobs, seed, and every input (train pairs, features, graphs), so another `visual` or
    graph never reuses a run."""
    engine = {k: v for k, v in dataclasses.asdict(config).items() if k not in RESUMABLE_KNOBS}
    inputs = data.inputs
    return {
        "code": _source_crc(),
        "model": type(model).__name__,
        "config": dataclasses.asdict(model.config),
        "point": dataclasses.asdict(config.point(model.config.train)),
        "train": engine,
        "seed": seed,
        "data": [inputs.n_users, inputs.n_items, len(inputs.train_pairs), _crc(inputs.train_pairs)],
        "features": {name: _crc(matrix) for name, matrix in sorted(inputs.features.items())},
        "graphs": {name: _graph_crc(graph) for name, graph in sorted(inputs.graphs.items())},
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rng_state(rng: np.random.Generator, device: torch.device) -> dict[str, Any]:
    state = {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(rng: np.random.Generator, state: dict[str, Any], device: torch.device) -> None:
    rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


class _Run:
    """The mutable state of one training run; `state_dict()` is exactly what the checkpoint holds."""

    def __init__(self, model: Recommender, optimizer: torch.optim.Optimizer, rng: np.random.Generator,
                 valid_metric: str = "recall@20") -> None:
        self.model, self.optimizer, self.rng, self.valid_metric = model, optimizer, rng, valid_metric
        self.epoch = 0  # completed epochs
        self.best: dict[str, Any] | None = None
        self.bad_evals = 0
        self.stopped_early = False
        self.history: list[dict[str, Any]] = []

    def state_dict(self, fingerprint: dict[str, Any], device: torch.device) -> dict[str, Any]:
        return {
            "fingerprint": fingerprint, "epoch": self.epoch, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "rng": _rng_state(self.rng, device), "best": self.best,
            "bad_evals": self.bad_evals, "stopped_early": self.stopped_early, "history": self.history,
        }

    def load(self, state: dict[str, Any], device: torch.device) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(self.rng, state["rng"], device)
        self.epoch, self.best, self.bad_evals = state["epoch"], state["best"], state["bad_evals"]
        self.stopped_early, self.history = state["stopped_early"], state["history"]

    def record_evaluation(self, metrics: dict[str, dict[str, float]], patience: int) -> None:
        """MMRec's early stopping: a strictly better valid score resets the counter; stop once the
        counter exceeds `patience`."""
        score = metrics["valid"][self.valid_metric]
        if self.best is None or score > self.best["valid"][self.valid_metric]:
            state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            self.best = {"epoch": self.epoch, "valid": metrics["valid"], "test": metrics["test"], "model": state}
            self.bad_evals = 0
        else:
            self.bad_evals += 1
            self.stopped_early = self.bad_evals > patience


def train_epoch(model: Recommender, optimizer: torch.optim.Optimizer, sampler: NegativeSampler | None,
                pairs: torch.Tensor, batch_size: int, rng: np.random.Generator, epoch: int) -> dict[str, float]:
    """One pass over the shuffled train pairs; returns the mean of each loss term over the batches.
    Without a `sampler` (in-batch negatives) the model's loss gets `neg=None`."""
    model.pre_epoch(epoch, rng)
    model.train()
    order = rng.permutation(len(pairs))
    negatives = None
    if sampler is not None:
        negatives = torch.from_numpy(sampler.sample(pairs[:, 0].cpu().numpy()[order], rng)).to(pairs.device)
    order_t = torch.from_numpy(order).to(pairs.device)
    totals: dict[str, torch.Tensor] = {}
    n_batches = 0
    for start in range(0, len(order), batch_size):
        batch = pairs[order_t[start : start + batch_size]]
        neg = None if negatives is None else negatives[start : start + batch_size]
        losses = model.loss(batch[:, 0], batch[:, 1], neg)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()
        for name, value in losses.items():
            totals[name] = totals.get(name, 0.0) + value.detach()
        n_batches += 1
    means = {name: float(total) / n_batches for name, total in totals.items()}
    if not np.isfinite(means["loss"]):
        raise FloatingPointError(f"training loss is {means['loss']} at epoch {epoch + 1}")
    return means


def fit(model: Recommender, data: TrainData, config: TrainConfig, seed: int,
        checkpoint: str | Path | None = None, progress: bool = True) -> FitResult:
    """Train `model` (built with `build_model`) on `data` at its training point (`model.config.train`,
    with `config`'s overrides); afterwards it holds the best-valid weights.

    With `checkpoint`, the state is saved after every epoch and a rerun with the same model, config,
    seed and data continues from it (a finished run returns at once). A saved run that went further
    than `config.epochs` is not reused: the result must never report more epochs than were asked for.
    """
    device = resolve_device(config.device)
    if device.type == "cpu":
        keep_freed_memory_for_reuse()
    model.to(device)
    point = config.point(model.config.train)
    prepare_dense_blocks(model, config.precision, config.compile, device)
    # fused: one kernel for all parameters, several times faster than the per-tensor loop on CPU.
    optimizer = torch.optim.Adam(model.parameters(), lr=point.lr, weight_decay=point.weight_decay, fused=True)
    run = _Run(model, optimizer, np.random.default_rng(seed), point.valid_metric)
    key = fingerprint(model, data, config, seed)
    if checkpoint is not None and (state := load_state(checkpoint, key)) is not None:
        if state["epoch"] > config.epochs:
            log.info("checkpoint %s ran %d epochs, more than the %d asked for: starting afresh", checkpoint,
                     state["epoch"], config.epochs)
        else:
            run.load(state, device)
            log.info("resuming from %s after epoch %d", checkpoint, run.epoch)
    sampler = NegativeSampler(data.inputs.train_pairs, data.inputs.n_items) if point.negatives else None
    pairs = torch.from_numpy(data.inputs.train_pairs).to(device)
    evaluator = Evaluator(data, device, config.eval_batch_size)
    bar = tqdm(total=config.epochs, initial=run.epoch, desc=f"train {type(model).__name__}", disable=not progress)
    while run.epoch < config.epochs and not run.stopped_early:
        for group in optimizer.param_groups:
            group["lr"] = point.lr_at(run.epoch)
        _sync(device)
        start = time.perf_counter()
        losses = train_epoch(model, optimizer, sampler, pairs, point.batch_size, run.rng, run.epoch)
        _sync(device)
        record: dict[str, Any] = {"epoch": run.epoch + 1, **losses, "seconds": time.perf_counter() - start}
        run.epoch += 1
        if run.epoch % config.eval_every == 0 or (run.epoch == config.epochs and run.best is None):
            start = time.perf_counter()
            metrics = evaluator.evaluate(model)
            record["eval_seconds"] = time.perf_counter() - start
            record.update({f"{split}_{name}": value for split in metrics for name, value in metrics[split].items()})
            run.record_evaluation(metrics, config.patience)
        run.history.append(record)
        if checkpoint is not None:
            save_state(checkpoint, run.state_dict(key, device))
        bar.update(1)
        selection = f"valid_{point.valid_metric}"
        bar.set_postfix(loss=f"{losses['loss']:.4f}", valid=record.get(selection, "-"))
        log.info("epoch %d: loss %.5f, %.2f s, %.0f pairs/s%s", run.epoch, losses["loss"], record["seconds"],
                 len(pairs) / record["seconds"],
                 f", valid {point.valid_metric} {record[selection]:.4f}" if "eval_seconds" in record else "")
    bar.close()
    return _result(run, device, point)


def _result(run: _Run, device: torch.device, point: TrainingPoint) -> FitResult:
    best = run.best
    run.model.load_state_dict(best["model"])
    train_seconds = [r["seconds"] for r in run.history]
    eval_seconds = [r["eval_seconds"] for r in run.history if "eval_seconds" in r]
    return FitResult(
        best_epoch=best["epoch"], epochs=run.epoch, valid=best["valid"], test=best["test"],
        history=run.history, seconds_per_epoch=float(np.mean(train_seconds)),
        seconds_per_eval=float(np.mean(eval_seconds)), stopped_early=run.stopped_early,
        n_parameters=sum(p.numel() for p in run.model.parameters()), device=str(device), point=point,
    )
