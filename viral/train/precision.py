"""Reduced precision and compilation of a model's dense blocks (`train.precision`, `train.compile`).

A model lists its dense sub-networks in `dense_blocks()` (VIRAL: the CSE/TBR fusion and the slot MLPs;
DRAGON, MENTOR, COHESION: the modality MLPs; the other multimodal baselines: their feature projections;
BPR and LightGCN have none, so these settings leave them unchanged). With `precision: bf16` each block
runs under autocast (bf16 matrix products) and its floating outputs are cast back to fp32, so everything
between the blocks stays fp32: the sparse propagation (`viral.models.base.spmm` also casts its input),
the losses and the evaluation scores. With `compile: true` each block's forward goes through
`torch.compile`. Training and evaluation both see the prepared blocks.
"""
from __future__ import annotations

import functools
from typing import Any, Literal

import torch
from torch import nn

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}
Precision = Literal[tuple(DTYPES)]  # "fp32" | "bf16", for the config builder


def prepare_dense_blocks(model: nn.Module, precision: Precision, compile: bool, device: torch.device) -> list[nn.Module]:
    """Set how `model.dense_blocks()` run; calling it again replaces the previous setting. Returns them."""
    if precision not in DTYPES:
        raise ValueError(f"train.precision: expected one of {', '.join(DTYPES)}, got {precision!r}")
    blocks = list(model.dense_blocks())
    for block in blocks:
        block.__dict__.pop("forward", None)  # back to the class's own forward
        if not compile and precision == "fp32":
            continue
        forward = torch.compile(block.forward) if compile else block.forward
        if precision != "fp32":
            forward = _autocast(forward, torch.device(device).type, DTYPES[precision])
        block.forward = forward  # an instance attribute: nn.Module.__call__ dispatches to it
    return blocks


def _autocast(forward, device_type: str, dtype: torch.dtype):
    @functools.wraps(forward)
    def run(*args, **kwargs):
        with torch.autocast(device_type, dtype=dtype):
            return to_fp32(forward(*args, **kwargs))

    return run


def to_fp32(value: Any) -> Any:
    """`value` with every floating tensor (also inside tuples, lists and dicts) cast to fp32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(to_fp32(item) for item in value)
    if isinstance(value, dict):
        return {key: to_fp32(item) for key, item in value.items()}
    return value
