"""Config of the train stage (engine knobs; model knobs live in each model's own Config)."""
from __future__ import annotations

from dataclasses import dataclass

from viral.config import bounded, torch_device


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = bounded(1000, ge=1)           # upper bound; early stopping usually ends the run first
    batch_size: int = bounded(2048, ge=1)       # (user, positive, negative) triples per optimiser step
    lr: float = bounded(0.001, gt=0)            # Adam learning rate
    weight_decay: float = bounded(0.0, ge=0)    # Adam weight decay (MMRec: 0; models regularise in their loss)
    patience: int = bounded(20, ge=0)           # stop after more than this many evaluations without a better valid Recall@20
    eval_every: int = bounded(1, ge=1)          # evaluate valid and test every this many epochs
    eval_batch_size: int = bounded(4096, ge=1)  # users scored per matrix product at evaluation
    device: str = torch_device("auto")          # auto (CUDA when available) | cpu | cuda | cuda:N
    checkpoint: bool = True                     # save the training state every epoch so an interrupted run resumes
