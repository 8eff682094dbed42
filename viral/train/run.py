"""The train stage: load what the selected model needs, train it, write metrics, curves and the model."""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from viral.io import atomic_path
from viral.models import model_class
from viral.params import Params
from viral.stage import StageError
from viral.train.cpu import set_threads
from viral.train.data import TrainData, load_prepared_inputs
from viral.train.evaluate import Evaluator, modality_contribution
from viral.train.loop import FitResult, build_model, fit
from viral.train.outputs import write_outputs, write_user_results

log = logging.getLogger(__name__)


def experiment_knobs(params: Params) -> dict[str, Any]:
    """The top-level scalar params (dataset, model, fusion, visual, seed)."""
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)
            if isinstance(getattr(params, f.name), (str, int, float, bool))}


def resolved_model_config(params: Params):
    """The selected model's config, where a field named like a top-level knob (e.g. VIRAL's `fusion`)
    takes the top-level value, so `dvc exp run -S fusion=concat` reaches the model."""
    config = params.model_config()
    knobs = experiment_knobs(params)
    overrides = {f.name: knobs[f.name] for f in dataclasses.fields(config) if f.name in knobs}
    return dataclasses.replace(config, **overrides)


def run_train(params: Params, root: str | Path = ".") -> dict[str, Any]:
    root = Path(root)
    dataset = params.dataset
    cls = model_class(params.model)
    config = resolved_model_config(params)
    set_threads(params.train.threads)
    data = load_prepared_inputs(root / "data/prepared" / dataset, root / "data/features" / dataset,
                                root / "data/graphs" / dataset, cls.inputs_needed(config))
    model_dir = root / "models" / dataset
    model_dir.mkdir(parents=True, exist_ok=True)
    try:
        model = build_model(cls, data, config, params.seed)
        result = fit(model, data, params.train, params.seed,
                     checkpoint=model_dir / "checkpoint.pt" if params.train.checkpoint else None)
    except (ValueError, FloatingPointError) as err:
        raise StageError(str(err)) from None
    with atomic_path(model_dir / "best.pt") as tmp:
        torch.save({"model": params.model, "config": dataclasses.asdict(config),
                    "state_dict": model.state_dict()}, tmp)
    report = {"seed": params.seed, "data_seed": params.data_seed, "device": result.device,
              "stopped_early": result.stopped_early, "model_config": dataclasses.asdict(config),
              "train": dataclasses.asdict(params.train), "training_point": dataclasses.asdict(result.point)}
    labels = {"seed": params.seed, "data_seed": params.data_seed, "visual": params.visual,
              "valid_metric": result.point.valid_metric, **model.summary()}
    record = write_outputs(result, root / "results", model_dir / "report.json", params.model, dataset, report,
                           labels)
    write_best_epoch_details(model, data, result, root / "results", params)
    log.info("best epoch %d of %d: valid recall@20 %.4f, test recall@20 %.4f", record["best_epoch"],
             record["epochs"], record["valid"]["recall@20"], record["test"]["recall@20"])
    return record


def write_best_epoch_details(model, data: TrainData, result: FitResult, results_dir: Path, params: Params) -> None:
    """Each user's valid and test metrics and the modality contribution of the best-valid model (which
    `fit` leaves in `model`), for paired tests between runs and the paper's Figure 1."""
    evaluator = Evaluator(data, torch.device(result.device), params.train.eval_batch_size)
    per_user = evaluator.evaluate_users(model)
    # Rounding to 4 decimals can move a mean by 1e-4; more means the model's state outside its weights
    # (e.g. a resampled graph) changed after the best epoch, and the per-user file says so.
    drift = [f"{split} {name}" for split, best in (("valid", result.valid), ("test", result.test))
             for name, value in best.items() if abs(per_user[split].values[name].mean() - value) > 1.5e-4]
    if drift:
        log.warning("per-user metrics of the best-valid weights differ from that epoch's evaluation: %s",
                    ", ".join(drift))
    weights = {slot: values.float().cpu().numpy() for slot, values in model.user_modality_weights().items()}
    labels = {"model": params.model, "dataset": params.dataset, "seed": params.seed, "data_seed": params.data_seed,
              "best_epoch": result.best_epoch}
    write_user_results(results_dir, per_user, modality_contribution(model, evaluator), weights, labels)
