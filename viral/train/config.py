"""Config of the train stage (engine knobs; model knobs live in each model's own Config)."""
from __future__ import annotations

from dataclasses import dataclass

from viral.train.precision import Precision


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 1000           # upper bound; early stopping usually ends the run first
    batch_size: int = 2048       # (user, positive, negative) triples per optimiser step
    lr: float = 0.001            # Adam learning rate
    weight_decay: float = 0.0    # Adam weight decay (MMRec: 0; models regularise in their loss)
    patience: int = 20           # stop after more than this many evaluations without a better valid Recall@20
    eval_every: int = 1          # evaluate valid and test every this many epochs
    eval_batch_size: int = 4096  # users scored per matrix product at evaluation
    device: str = "auto"         # auto (CUDA when available) | cpu | cuda | cuda:N
    checkpoint: bool = True      # save the training state every epoch so an interrupted run resumes
    precision: Precision = "fp32"  # fp32 | bf16: autocast of the models' dense blocks (viral.train.precision)
    compile: bool = False        # torch.compile the models' dense blocks
