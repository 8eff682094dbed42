"""`vllm` backend: one offline `LLM` engine per run, every shard submitted as one `generate` call.

vLLM's continuous batching schedules the whole list, so the caller only chunks for checkpointing.
vllm is imported lazily (it is a GPU-only extra: `pip install 'viral[vlm]'`). The engine factory is
a parameter so that everything around the engine (prompt building, sampling, ordering, errors) is
unit-tested with a fake `LLM` on machines without vLLM or a GPU.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from viral.caption.backend import CaptionRequest, Generation, Sampling, first_line, isolate_failures
from viral.caption.prompts import render_chat
from viral.stage import StageError

if TYPE_CHECKING:
    from viral.caption.config import CaptionConfig

# (engine kwargs, sampling kwargs) -> (LLM-like object with .generate, SamplingParams-like object)
EngineFactory = Callable[[dict, dict], tuple[Any, Any]]


def engine_kwargs(config: "CaptionConfig", seed: int) -> dict:
    """Arguments of `vllm.LLM`: one image per prompt, no video (smaller profiling budget), capped pixels."""
    return dict(
        model=config.model,
        tensor_parallel_size=config.tensor_parallel_size,
        gpu_memory_utilization=config.gpu_memory_utilization,
        max_model_len=config.max_model_len,
        limit_mm_per_prompt={"image": 1, "video": 0},
        mm_processor_kwargs={"max_pixels": config.max_pixels},
        seed=seed,
    )


def sampling_kwargs(sampling: Sampling) -> dict:
    """Explicit SamplingParams: vLLM does not inherit the model's generation_config."""
    kwargs = dict(
        max_tokens=sampling.max_new_tokens,
        temperature=sampling.temperature,
        repetition_penalty=sampling.repetition_penalty,
    )
    if not sampling.greedy:
        kwargs["seed"] = sampling.seed
    return kwargs


def vllm_engine(engine: dict, sampling: dict) -> tuple[Any, Any]:
    """The real engine; one clear line when vllm or a GPU is missing."""
    try:
        import vllm
    except ImportError as err:
        raise StageError(
            f"caption.backend=vllm needs the vllm package on a CUDA machine (pip install 'viral[vlm]'): {err}"
        ) from None
    import torch

    if not torch.cuda.is_available():
        raise StageError("caption.backend=vllm needs a CUDA GPU, and torch sees none (use backend=transformers on CPU)")
    return vllm.LLM(**engine), vllm.SamplingParams(**sampling)


class VllmCaptioner:
    backend = "vllm"

    def __init__(self, config: "CaptionConfig", sampling: Sampling, engine_factory: EngineFactory = vllm_engine):
        from transformers import AutoProcessor

        import viral.caption.qwen_processor  # noqa: F401  (registers the torchvision-free processor)

        self.model = config.model
        # The model's own chat template, rendered exactly as the transformers backend does.
        try:
            self.processor = AutoProcessor.from_pretrained(config.model)
        except (OSError, ValueError, KeyError) as err:
            raise StageError(f"caption.model {config.model!r}: cannot load its processor ({first_line(err)})") from None
        self.llm, self.sampling_params = engine_factory(engine_kwargs(config, sampling.seed), sampling_kwargs(sampling))

    def prompt(self, request: CaptionRequest) -> dict:
        return {
            "prompt": render_chat(self.processor, request.text),
            "multi_modal_data": {"image": request.image},
            "multi_modal_uuids": {"image": request.image_id},
        }

    def generate(self, requests: Sequence[CaptionRequest]) -> list[Generation]:
        if not requests:
            return []
        return isolate_failures(self._generate, requests)

    def _generate(self, requests: Sequence[CaptionRequest]) -> list[Generation]:
        outputs = self.llm.generate([self.prompt(r) for r in requests], self.sampling_params, use_tqdm=True)
        if len(outputs) != len(requests):
            raise StageError(f"vllm returned {len(outputs)} outputs for {len(requests)} prompts")
        return [self._generation(output) for output in outputs]

    @staticmethod
    def _generation(output) -> Generation:
        if not output.outputs:
            return Generation.failed("vllm returned no completion")
        completion = output.outputs[0]
        if completion.finish_reason not in ("stop", "length"):
            return Generation.failed(f"vllm finish_reason={completion.finish_reason!r}")
        return Generation(
            text=completion.text.strip(),
            prompt_tokens=len(output.prompt_token_ids or []),
            generated_tokens=len(completion.token_ids),
            finish_reason=completion.finish_reason,
        )
