"""Config of the train stage (engine knobs; model knobs live in each model's own Config)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 1000
    batch_size: int = 2048
    lr: float = 0.001
    patience: int = 20
    eval_every: int = 1
    eval_batch_size: int = 4096
    device: str = "auto"
