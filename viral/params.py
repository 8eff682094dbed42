"""params.yaml as one validated object: experiment knobs at the top, one typed section per stage."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from viral.caption.config import CaptionConfig
from viral.config import ConfigError, build, choices, read_yaml
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
    seed: int = 999       # model initialisation, shuffling and negative sampling (train)
    data_seed: int = 999  # the data: synthetic generation, the per-user split, sampled captions and graphs
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
