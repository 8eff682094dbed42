"""Config of the caption stage (params.yaml `caption:`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from viral.config import ConfigError, bounded, torch_device

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
    # precomputed: share of the items that must get a description; below it a loud warning, none an error
    min_coverage: float = bounded(0.9, ge=0, le=1)
    # Sampling (greedy when temperature is 0). Qwen2.5-VL's own generation_config uses 1.05; vLLM does
    # not inherit it, so it is explicit here and identical for both model backends.
    max_new_tokens: int = bounded(128, ge=1)
    temperature: float = bounded(0.0, ge=0, why="0 = greedy")
    repetition_penalty: float = bounded(1.05, gt=0)
    # images are downscaled to this many pixels (~1280 visual tokens)
    max_pixels: int = bounded(1280 * 28 * 28, ge=28 * 28, why="one 28x28 visual token")
    shard_items: int = bounded(256, ge=1)  # items per generate call; one cache shard each, so a kill loses at most this
    batch_size: int = bounded(8, ge=1)  # transformers: images per forward pass
    device: str = torch_device("auto")  # transformers: auto | cpu | cuda | cuda:N (bf16 on GPU, fp32 on CPU)
    tensor_parallel_size: int = bounded(1, ge=1)  # vllm
    gpu_memory_utilization: float = bounded(0.9, gt=0, le=1)  # vllm
    max_model_len: int = bounded(4096, ge=1)  # vllm: visual tokens + prompt + output
    cache_dir: str = "data/cache/captions"  # outside the DVC outs: survives `dvc repro` deleting them

    def __post_init__(self) -> None:
        if not self.prompts:
            raise ConfigError("prompts: expected at least one of title, plain")
