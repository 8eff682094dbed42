"""params.yaml as one validated object: experiment knobs at the top, one typed section per stage."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from viral.caption.config import CaptionConfig
from viral.config import ConfigError, bounded, build, choices, read_yaml
from viral.data.config import DownloadConfig, ImagesConfig, PrepareConfig
from viral.data.datasets import Dataset, builtin_datasets, parse_datasets
from viral.encode.config import EncodeConfig
from viral.graphs.config import GraphsConfig
from viral.models import MODELS, model_class
from viral.train.config import TrainConfig

FUSIONS = ("viral", "pooling", "concat", "weighted_concat")
VISUALS = ("vlm_title", "vlm_plain", "original")


@dataclass(frozen=True)
class Params:
    dataset: str = "synthetic"  # a name in `datasets` (checked by parse_params)
    model: str = choices(lambda: MODELS, "viral")
    fusion: str = choices(FUSIONS, "viral")
    visual: str = choices(VISUALS, "vlm_title")
    # model initialisation, shuffling and negative sampling (train)
    seed: int = bounded(999, ge=0, le=2**32 - 1)
    # the data: synthetic generation, the per-user split, sampled captions and graphs
    data_seed: int = bounded(999, ge=0, le=2**32 - 1)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)
    caption: CaptionConfig = field(default_factory=CaptionConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    graphs: GraphsConfig = field(default_factory=GraphsConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    models: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, Dataset] = field(default_factory=builtin_datasets)

    def dataset_config(self) -> Dataset:
        """The registry entry of the selected dataset."""
        if self.dataset not in self.datasets:
            raise ConfigError(f"dataset: unknown name {self.dataset!r}; valid: {', '.join(sorted(self.datasets))}")
        return self.datasets[self.dataset]

    def model_config(self, name: str | None = None):
        """The typed config of model `name` (default: the selected model), defaults filled in."""
        name = name or self.model
        if name in self.models:
            return self.models[name]
        return model_class(name).Config()


def top_level_knobs() -> tuple[str, ...]:
    """The experiment knobs at the top of params.yaml (dataset, model, fusion, ...), not the sections."""
    return tuple(f.name for f in dataclasses.fields(Params) if f.default is not dataclasses.MISSING)


def _reject_top_level_knobs(name: str, section) -> None:
    """A model field named like a top-level knob is filled from it (train.run.resolved_model_config), so a
    value set under models.<name> could never take effect."""
    for key in section if isinstance(section, dict) else ():
        if key in top_level_knobs():
            raise ConfigError(f"models.{name}.{key}: set the top-level `{key}` instead "
                              f"(it fills this field for every model)")


def parse_params(raw: dict, source: str = "params.yaml") -> Params:
    try:
        raw = dict(raw)
        raw_models = raw.pop("models", None) or {}
        datasets = parse_datasets(raw.pop("datasets", None))
        if not isinstance(raw_models, dict):
            raise ConfigError(f"models: expected a mapping of model name -> settings, got {raw_models!r}")
        params = build(Params, raw)
        models = {}
        for name, section in raw_models.items():
            if name not in MODELS:
                raise ConfigError(f"models.{name}: unknown model; valid: {', '.join(sorted(MODELS))}")
            _reject_top_level_knobs(name, section)
            models[name] = build(model_class(name).Config, section, f"models.{name}")
        object.__setattr__(params, "datasets", datasets)
        params.dataset_config()
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    object.__setattr__(params, "models", models)
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate the whole params file; any problem is a one-line ConfigError."""
    return parse_params(read_yaml(path), str(path))
