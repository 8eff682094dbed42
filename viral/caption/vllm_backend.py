"""`vllm` backend: one offline `LLM` engine per run, every chunk submitted as one `generate` call.

vLLM's continuous batching schedules the whole list (every prompt of every item in the chunk, so the
`title` and `plain` requests of one image sit side by side and share its cached image prefix); the
caller only chunks for checkpointing and decodes the next chunk while this one generates. Images
arrive already resized onto Qwen2.5-VL's grid, so no `mm_processor_kwargs` are passed (some vLLM
versions ignore them for Qwen2.5-VL) and the visual-token count equals the transformers backend's.

Every argument name of vLLM's API that this project relies on is in `engine_kwargs`,
`sampling_kwargs`, `vllm_engine` and `VllmCaptioner.prompt` / `_generation`; the Ray path
(`viral.caption.ray_backend`) reuses the first two. vllm is imported lazily (a GPU-only extra:
`pip install 'viral[vlm]'`). The engine factory is a parameter so that everything around the engine
is unit-tested with a fake `LLM` on machines without vLLM or a GPU.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Sequence

from viral.caption.backend import CaptionRequest, Generation, Sampling, bisect_failures
from viral.caption.prompts import render_chat
from viral.stage import StageError

if TYPE_CHECKING:
    from viral.caption.config import CaptionConfig

# (engine kwargs, sampling kwargs, environment) -> (LLM-like object with .generate, SamplingParams-like object)
EngineFactory = Callable[[dict, dict, dict], tuple[Any, Any]]
BATCH_INVARIANT_ENV = "VLLM_BATCH_INVARIANT"  # vLLM reads it when the engine starts


def engine_kwargs(config: "CaptionConfig", seed: int) -> dict:
    """Arguments of `vllm.LLM` (minus `model`, which Ray's processor config takes separately).

    One image and no video per prompt (a smaller profiling budget); prefix caching on, so the system
    prompt and image tokens shared by an item's `title` and `plain` requests are computed once;
    `max_num_seqs` / `max_num_batched_tokens` sized for one 80-141 GB GPU (README "Captioning").
    """
    return dict(
        tensor_parallel_size=config.tensor_parallel_size,
        gpu_memory_utilization=config.gpu_memory_utilization,
        max_model_len=config.max_model_len,
        max_num_seqs=config.max_num_seqs,
        max_num_batched_tokens=config.max_num_batched_tokens,
        enable_prefix_caching=True,
        limit_mm_per_prompt={"image": 1, "video": 0},
        seed=seed,
    )


def engine_env(config: "CaptionConfig") -> dict[str, str]:
    """Environment the engine must start with (batch-invariant kernels are chosen at start-up)."""
    return {BATCH_INVARIANT_ENV: "1"} if config.batch_invariant else {}


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


def vllm_engine(engine: dict, sampling: dict, env: dict) -> tuple[Any, Any]:
    """The real engine; one clear line when vllm or a GPU is missing."""
    os.environ.update(env)  # before vllm is imported: it reads its environment variables on import
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


def request_prompt(chat_text: str, request: CaptionRequest) -> dict:
    """One vLLM prompt: the rendered chat text, the prepared image, and its content hash as the image's
    id (vLLM's multi-modal cache then reuses the encoded image across the item's prompts)."""
    return {
        "prompt": chat_text,
        "multi_modal_data": {"image": request.image},
        "multi_modal_uuids": {"image": request.image_id},
    }


class VllmCaptioner:
    backend = "vllm"

    def __init__(self, config: "CaptionConfig", sampling: Sampling, engine_factory: EngineFactory = vllm_engine):
        from viral.caption.qwen_processor import load_processor

        self.model = config.model
        # The model's own chat template, rendered exactly as the transformers backend does.
        self.processor = load_processor(config.model)
        engine = dict(model=config.model, **engine_kwargs(config, sampling.seed))
        self.llm, self.sampling_params = engine_factory(engine, sampling_kwargs(sampling), engine_env(config))

    def prompt(self, request: CaptionRequest) -> dict:
        return request_prompt(render_chat(self.processor, request.text), request)

    def generate(self, requests: Sequence[CaptionRequest]) -> list[Generation]:
        if not requests:
            return []
        return bisect_failures(self._generate, requests)

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
