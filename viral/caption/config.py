"""Config of the caption stage (params.yaml `caption:`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from viral.config import ConfigError

PromptName = Literal["title", "plain"]


@dataclass(frozen=True)
class CaptionConfig:
    backend: Literal["precomputed", "transformers", "vllm"] = "precomputed"
    prompts: list[PromptName] = field(default_factory=lambda: ["title", "plain"])
    # Versioned prompt templates (YAML, one per prompt name); their text is part of the cache key.
    prompt_file: str = "viral/caption/prompts.yaml"
    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    # precomputed backend: prompt -> CSV/JSON/Parquet of descriptions; `{dataset}` is filled in.
    precomputed: dict[str, str] = field(
        default_factory=lambda: {
            "title": "data/raw/{dataset}/descriptions_title.csv",
            "plain": "data/raw/{dataset}/descriptions_plain.csv",
        }
    )
    # Sampling (greedy when temperature is 0). Qwen2.5-VL's own generation_config uses 1.05; vLLM does
    # not inherit it, so it is explicit here and identical for both model backends.
    max_new_tokens: int = 128
    temperature: float = 0.0
    repetition_penalty: float = 1.05
    max_pixels: int = 1280 * 28 * 28  # images are downscaled to this many pixels (~1280 visual tokens)
    shard_items: int = 256  # items per generate call; one cache shard each, so a kill loses at most this
    batch_size: int = 8  # transformers: images per forward pass
    device: str = "auto"  # transformers: auto | cpu | cuda | cuda:N (bf16 on GPU, fp32 on CPU)
    tensor_parallel_size: int = 1  # vllm
    gpu_memory_utilization: float = 0.9  # vllm
    max_model_len: int = 4096  # vllm: visual tokens + prompt + output
    cache_dir: str = "data/cache/captions"  # outside the DVC outs: survives `dvc repro` deleting them

    def __post_init__(self) -> None:
        positive = ("max_new_tokens", "max_pixels", "shard_items", "batch_size", "tensor_parallel_size",
                    "max_model_len")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: expected a positive int, got {getattr(self, name)}")
        if self.temperature < 0:
            raise ConfigError(f"temperature: expected >= 0 (0 = greedy), got {self.temperature}")
        if self.repetition_penalty <= 0:
            raise ConfigError(f"repetition_penalty: expected > 0, got {self.repetition_penalty}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"gpu_memory_utilization: expected in (0, 1], got {self.gpu_memory_utilization}")
        if self.max_pixels < 28 * 28:
            raise ConfigError(f"max_pixels: expected at least 784 (one 28x28 visual token), got {self.max_pixels}")
        if not self.prompts:
            raise ConfigError("prompts: expected at least one of title, plain")
