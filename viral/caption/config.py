"""Config of the caption stage."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class CaptionConfig:
    backend: Literal["precomputed", "transformers", "vllm"] = "precomputed"
    prompts: list[Literal["title", "plain"]] = field(default_factory=lambda: ["title", "plain"])
    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    precomputed: dict[str, str] = field(default_factory=dict)
