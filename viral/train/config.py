"""Config of the train stage: the engine's knobs, and each model's published training point.

A model's `Config` carries `train: TrainingPoint` (its paper's lr, batch size, weight decay, lr schedule,
selection metric, loss kind), shown in params.yaml under `models.<name>.train`. The `train:` section's
`lr`, `batch_size`, `weight_decay`, `lr_decay` and `valid_metric` are null by default; a value set there
(`dvc exp run -S train.lr=...`) overrides the selected model's point, e.g. for a sweep.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from viral.config import bounded, choices, torch_device
from viral.train.metrics import metric_names
from viral.train.precision import Precision


@dataclass(frozen=True)
class TrainingPoint:
    """How one model is trained. Defaults are MMRec's `overall.yaml`; each model sets its paper's values."""

    lr: float = bounded(1e-3, gt=0)               # Adam learning rate
    batch_size: int = bounded(2048, ge=1)         # (user, positive[, negative]) rows per optimiser step
    weight_decay: float = bounded(0.0, ge=0)      # Adam weight decay (MMRec: 0; models regularise in their loss)
    lr_decay: float = bounded(1.0, gt=0, le=1)    # lr x lr_decay^(epoch / lr_decay_every) (MMRec's scheduler)
    lr_decay_every: int = bounded(50, ge=1)
    valid_metric: str = choices(metric_names, "recall@20")  # early stopping and best-epoch selection
    negatives: bool = True                        # one sampled negative per pair; false: in-batch (e.g. SLMRec)

    def lr_at(self, epoch: int) -> float:
        """The learning rate of 0-based `epoch` (MMRec's LambdaLR, stepped once per epoch)."""
        return self.lr * self.lr_decay ** (epoch / self.lr_decay_every)


# The TrainingPoint fields an explicit `train.<key>` may override (the loss kind belongs to the model).
OVERRIDABLE = ("lr", "batch_size", "weight_decay", "lr_decay", "valid_metric")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = bounded(1000, ge=1)          # upper bound; early stopping usually ends the run first
    patience: int = bounded(20, ge=0)          # stop after more than this many evaluations without improvement
    eval_every: int = bounded(1, ge=1)         # evaluate valid and test every this many epochs
    eval_batch_size: int = bounded(4096, ge=1)  # users scored per matrix product at evaluation
    device: str = torch_device("auto")         # auto (CUDA when available) | cpu | cuda | cuda:N
    threads: int = bounded(0, ge=0)            # torch CPU threads; 0 = the cores free at start (at least 1)
    checkpoint: bool = True                    # save the training state every epoch so an interrupted run resumes
    precision: Precision = "fp32"              # fp32 | bf16: autocast of the models' dense blocks (viral.train.precision)
    compile: bool = False                      # torch.compile the models' dense blocks
    # Overrides of the selected model's training point; null = the model's own value.
    lr: float | None = bounded(None, gt=0)
    batch_size: int | None = bounded(None, ge=1)
    weight_decay: float | None = bounded(None, ge=0)
    lr_decay: float | None = bounded(None, gt=0, le=1)
    valid_metric: str | None = choices(metric_names, None)

    def point(self, model_point: TrainingPoint) -> TrainingPoint:
        """`model_point` with every override set here applied."""
        overrides = {name: getattr(self, name) for name in OVERRIDABLE if getattr(self, name) is not None}
        return dataclasses.replace(model_point, **overrides)
