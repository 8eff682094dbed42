"""The one small interface every model backend implements, and what flows through it.

A backend turns a list of `CaptionRequest` (decoded image + rendered instruction) into one
`Generation` per request, in the same order. Batching, caching, sharding and output files live in
`viral.caption.run`; backends only talk to the model. A per-item failure is returned as a
`Generation` with `error` set, never raised, so one bad image does not stop a run.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

from viral.stage import StageError

if TYPE_CHECKING:
    from PIL import Image

    from viral.caption.config import CaptionConfig

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Sampling:
    """Decoding settings shared by all model backends (and part of the cache key)."""

    max_new_tokens: int
    temperature: float
    repetition_penalty: float
    seed: int

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def key(self) -> dict:
        """What changes the output: the seed only matters when sampling."""
        fields = asdict(self)
        if self.greedy:
            fields.pop("seed")
        return fields


@dataclass(frozen=True)
class CaptionRequest:
    image_id: str  # content hash of the image bytes: stable id for vLLM's multi-modal cache
    text: str  # rendered instruction (template + title)
    image: "Image.Image"


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    generated_tokens: int
    finish_reason: str  # "stop" (end of sequence) | "length" (hit max_new_tokens) | "error"
    error: str | None = None

    @classmethod
    def failed(cls, error: str) -> "Generation":
        return cls(text="", prompt_tokens=0, generated_tokens=0, finish_reason="error", error=error)


class Captioner(Protocol):
    backend: str
    model: str

    def generate(self, requests: Sequence[CaptionRequest]) -> list[Generation]:
        """One Generation per request, in request order."""
        ...


def first_line(err: BaseException) -> str:
    """An exception as one short line (model errors can be pages long)."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def bisect_failures(
    run: Callable[[Sequence[CaptionRequest]], list[Generation]], batch: Sequence[CaptionRequest]
) -> list[Generation]:
    """`run(batch)`; if it raises, run each half on its own, recursively, until the culprits stand alone.

    One bad item in a chunk of n costs about 2·log2(n) extra calls instead of n single-item calls, and
    every good item is still generated together with others (as batched as the failure allows).
    """
    try:
        return run(batch)
    except Exception as err:  # OOM, a prompt too long, a bad image geometry: find the item that broke it
        if len(batch) == 1:
            return [Generation.failed(first_line(err))]
        log.warning("batch of %d failed (%s); bisecting it", len(batch), first_line(err))
    middle = len(batch) // 2
    return bisect_failures(run, batch[:middle]) + bisect_failures(run, batch[middle:])


def sampling_from(config: "CaptionConfig", seed: int) -> Sampling:
    return Sampling(config.max_new_tokens, config.temperature, config.repetition_penalty, seed)


def make_captioner(config: "CaptionConfig", seed: int) -> Captioner:
    """The in-process model engine of `caption.backend` (heavy imports happen here, not at import time)."""
    sampling = sampling_from(config, seed)
    if config.engine == "transformers":
        from viral.caption.hf_backend import TransformersCaptioner

        return TransformersCaptioner(config.model, sampling, batch_size=config.batch_size, device=config.device)
    if config.engine == "vllm":
        from viral.caption.vllm_backend import VllmCaptioner

        return VllmCaptioner(config, sampling)
    raise StageError(f"caption.backend {config.backend!r} has no model (precomputed imports descriptions)")
