"""Runs grouped by configuration, so the seeds of one configuration become one table row (mean ± sd).

A run's configuration is every param except `seed`, minus what cannot change its result: the knobs
listed in NO_EFFECT (threads, devices, caches, retries, batch sizes of inference-only work), the
sections of other models, top-level knobs its model has no field for (`fusion` for LightGCN) and, for a
model that reads no item features, `visual`, `caption.*` and `encode.*`. So `-S model=lightgcn,viral -S
fusion=viral,concat` gives LightGCN one row, not two.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from viral.models import MODELS, model_class
from viral.models.base import FEATURE_NAMES
from viral.params import Params
from viral.report.collect import Run, flatten

log = logging.getLogger(__name__)

PROPOSED = "viral"  # the model the tables compare against the baselines
NO_EFFECT = frozenset({
    "train.threads", "train.device", "train.checkpoint", "train.eval_batch_size",
    "download.retries", "download.timeout_s", "download.backoff_s", "download.mirrors", "download.cache_dir",
    "download.sha256", "images.concurrency", "images.retries", "images.timeout_s", "images.backoff_s",
    "images.shard_items", "images.cache_dir", "caption.shard_items", "caption.batch_size", "caption.device",
    "caption.cache_dir", "caption.tensor_parallel_size", "caption.gpu_memory_utilization", "encode.batch_size",
    "encode.device", "graphs.chunk_rows",
})
ALWAYS = frozenset({"dataset", "model", "data_seed"})  # top-level knobs every model's result depends on
FEATURE_KNOBS = ("visual", "caption.", "encode.")


def relevant_params(params: dict[str, Any]) -> dict[str, Any]:
    """The flattened params that can change the result of a run of `params["model"]`, without `seed`."""
    model = params["model"]
    cls = model_class(model)
    fields = {field.name for field in dataclasses.fields(cls.Config)}
    reads_features = bool(set(cls.requires) & set(FEATURE_NAMES))
    kept = {}
    for key, value in params.items():
        if key == "seed" or key in NO_EFFECT:
            continue
        if key.startswith("models.") and not key.startswith(f"models.{model}."):
            continue
        if "." not in key and key not in ALWAYS and key != "visual" and key not in fields:
            continue
        if not reads_features and key.startswith(FEATURE_KNOBS):
            continue
        kept[key] = value
    return kept


def default_value(key: str) -> Any:
    """The code's default for a flattened param key (a model's section from its Config)."""
    if key.startswith("models."):
        _, model, rest = key.split(".", 2)
        return flatten(dataclasses.asdict(model_class(model).Config())).get(rest)
    return flatten(dataclasses.asdict(Params())).get(key)


@dataclass
class Group:
    """The runs of one configuration, one per seed in seed order; `knobs` = its relevant params."""

    knobs: dict[str, Any]
    runs: list[Run]

    @property
    def dataset(self) -> str:
        return self.knobs["dataset"]

    @property
    def model(self) -> str:
        return self.knobs["model"]

    @property
    def seeds(self) -> list[int]:
        return [run.seed for run in self.runs]

    def values(self, metric: str, split: str = "test") -> list[float]:
        """`split` `metric` of each seed's run, as its metrics.json reports it."""
        return [float(run.metrics[split][metric]) for run in self.runs]

    def user_means(self, column: str) -> pd.Series:
        """Each user's `column` (e.g. "test_recall@20") averaged over the seeds, indexed by userID."""
        return pd.concat([run.per_user[column] for run in self.runs], axis=1).mean(axis=1)


def model_order(model: str) -> tuple[int, int]:
    """Registry order (the paper's Table 1 order), the proposed model last."""
    names = list(MODELS)
    return (model == PROPOSED, names.index(model) if model in names else len(names))


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs with the same relevant params, one per seed (a repeated seed keeps the first run listed)."""
    groups: dict[tuple, Group] = {}
    for run in runs:
        knobs = relevant_params(run.params)
        key = tuple(sorted(knobs.items(), key=lambda item: item[0]))
        group = groups.setdefault(key, Group(knobs, []))
        twin = next((other for other in group.runs if other.seed == run.seed), None)
        if twin is not None:
            log.warning("%s repeats %s (same configuration and seed): kept %s", run.name, twin.name, twin.name)
            continue
        group.runs.append(run)
    for group in groups.values():
        group.runs.sort(key=lambda run: run.seed)
    return sorted(groups.values(), key=lambda g: (g.dataset, model_order(g.model), str(sorted(g.knobs.items()))))


def varying_knobs(groups: list[Group]) -> list[str]:
    """Knobs (other than dataset and model) with two values among the groups of one dataset that have
    them: what a row label must show. A knob only some models read (a model's own section) does not
    vary by being absent elsewhere; knobs that only differ between datasets (e.g. an MMRec folder) are
    not shown."""
    varying: set[str] = set()
    for dataset in {g.dataset for g in groups}:
        members = [g for g in groups if g.dataset == dataset]
        keys = set().union(*(g.knobs for g in members)) - {"dataset", "model"}
        varying |= {key for key in keys if len({repr(g.knobs[key]) for g in members if key in g.knobs}) > 1}
    return sorted(varying)


def row_key(group: Group, knobs: list[str]) -> tuple:
    """What identifies the group's row across datasets: its model and its values of `knobs`."""
    return (group.model, *((key, group.knobs[key]) for key in knobs if key in group.knobs))


def is_reference(group: Group, knobs: list[str]) -> bool:
    """The proposed model at the code's defaults for every knob that varies (the paper's "VIRAL" row)."""
    return group.model == PROPOSED and all(group.knobs[key] == default_value(key) for key in knobs
                                           if key in group.knobs)


def differences(group: Group, knobs: list[str]) -> dict[str, Any]:
    """The varying knobs where `group` departs from the code's defaults."""
    return {key: group.knobs[key] for key in knobs if key in group.knobs and group.knobs[key] != default_value(key)}
