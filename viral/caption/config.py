"""Config of the caption stage (params.yaml `caption:`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from viral.caption.geometry import FACTOR, MIN_PIXELS
from viral.config import ConfigError, bounded, torch_device

PromptName = Literal["title", "plain"]
Engine = Literal["transformers", "vllm"]


@dataclass(frozen=True)
class RayConfig:
    """`caption.backend: ray`: Ray Data over a Ray cluster (README "Captioning at catalogue scale")."""

    # "" starts a local Ray on this machine; "auto" joins the cluster this machine belongs to (after
    # `ray start`); "ray://head:10001" connects as a Ray client.
    address: str = ""
    # vllm: ray.data.llm's vLLM engine processor (GPU clusters); transformers: an actor pool running the
    # transformers backend (CPU, or one GPU per replica with gpus_per_replica: 1).
    engine: Engine = "vllm"
    # Engine replicas (data parallelism). 0 = one per `tensor_parallel_size` GPUs of the cluster.
    replicas: int = bounded(0, ge=0)
    batch_size: int = bounded(64, ge=1)  # rows per engine call
    cpus_per_replica: float = bounded(1.0, ge=0)  # transformers engine
    gpus_per_replica: float = bounded(0.0, ge=0)  # transformers engine (vllm: tensor_parallel_size GPUs)
    num_cpus: int | None = bounded(None, ge=1)  # local Ray only: CPUs it may use (None = all)


@dataclass(frozen=True)
class CaptionConfig:
    backend: Literal["precomputed", "transformers", "vllm", "ray"] = "precomputed"
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
    # Images are resized onto Qwen2.5-VL's 28-pixel grid with at most this many pixels (~1280 visual tokens).
    max_pixels: int = bounded(1280 * FACTOR * FACTOR, ge=MIN_PIXELS)
    # Generations (item x prompt, an item's prompts side by side) per chunk: one `generate` call and one
    # cache part per prompt, so a kill loses at most one chunk. vLLM's batch drains at the end of each
    # call, so a chunk should hold several times max_num_seqs requests. Ray: results per cache part.
    shard_items: int = bounded(2048, ge=1)
    decode_workers: int = bounded(8, ge=1)  # threads decoding/resizing the next chunk during `generate`
    batch_size: int = bounded(8, ge=1)  # transformers: images per forward pass
    device: str = torch_device("auto")  # transformers: auto | cpu | cuda | cuda:N (bf16 on GPU, fp32 on CPU)
    tensor_parallel_size: int = bounded(1, ge=1)  # vllm
    gpu_memory_utilization: float = bounded(0.9, gt=0, le=1)  # vllm
    max_model_len: int = bounded(4096, ge=1)  # vllm: visual tokens + prompt + output
    max_num_seqs: int = bounded(512, ge=1)  # vllm: sequences decoded together
    max_num_batched_tokens: int = bounded(16384, ge=1)  # vllm: tokens per scheduler step (prefill chunk)
    # vllm: VLLM_BATCH_INVARIANT=1, outputs independent of batch composition (slower; Hopper-class GPUs).
    batch_invariant: bool = False
    ray: RayConfig = field(default_factory=RayConfig)
    cache_dir: str = "data/cache/captions"  # outside the DVC outs: survives `dvc repro` deleting them

    def __post_init__(self) -> None:
        if not self.prompts:
            raise ConfigError("prompts: expected at least one of title, plain")
        if len(set(self.prompts)) != len(self.prompts):
            raise ConfigError(f"prompts: each name at most once, got {self.prompts}")
        longest_image = self.max_pixels // (FACTOR * FACTOR)
        if self.uses_vllm and self.max_model_len <= longest_image + self.max_new_tokens:
            raise ConfigError(
                f"max_model_len: {self.max_model_len} cannot hold {longest_image} visual tokens (max_pixels)"
                f" + {self.max_new_tokens} new tokens + the prompt"
            )
        if self.uses_vllm and self.max_num_batched_tokens < longest_image:
            raise ConfigError(
                f"max_num_batched_tokens: {self.max_num_batched_tokens} is below the {longest_image} visual"
                " tokens of the largest image (max_pixels)"
            )

    @property
    def engine(self) -> str:
        """The model engine that generates (what the cache key and the `backend` column name)."""
        return self.ray.engine if self.backend == "ray" else self.backend

    @property
    def uses_vllm(self) -> bool:
        return self.engine == "vllm"
