"""The one small interface every model backend implements, and what flows through it.

A backend turns a list of `CaptionRequest` (decoded image + rendered instruction) into one
`Generation` per request, in the same order. Batching, caching, sharding and output files live in
`viral.caption.run`; backends only talk to the model. A per-item failure is returned as a
`Generation` with `error` set, never raised, so one bad image does not stop a run.
"""
from __future__ import annotations

import io
import logging
import math
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


def isolate_failures(
    run: Callable[[Sequence[CaptionRequest]], list[Generation]], batch: Sequence[CaptionRequest]
) -> list[Generation]:
    """`run(batch)`; if the batch raises, retry its requests one by one so only the culprit fails."""
    try:
        return run(batch)
    except Exception as err:  # OOM, a prompt too long, a bad image geometry: find the item that broke it
        log.warning("batch of %d failed (%s); retrying its items one by one", len(batch), first_line(err))
    results = []
    for request in batch:
        try:
            results.extend(run([request]))
        except Exception as err:
            results.append(Generation.failed(first_line(err)))
    return results


def sampling_from(config: "CaptionConfig", seed: int) -> Sampling:
    return Sampling(config.max_new_tokens, config.temperature, config.repetition_penalty, seed)


def prepare_image(data: bytes, max_pixels: int) -> "Image.Image":
    """Decode image bytes to RGB and downscale (aspect kept) to at most `max_pixels` pixels.

    Doing it here bounds visual tokens identically for every backend and keeps the model's own
    (slower, single-threaded) resize from ever seeing a multi-megapixel catalogue photo.
    """
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image = image.convert("RGB")
    pixels = image.width * image.height
    if pixels > max_pixels:
        scale = math.sqrt(max_pixels / pixels)
        size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
    return image


def make_captioner(config: "CaptionConfig", seed: int) -> Captioner:
    """The model backend named by `caption.backend` (heavy imports happen here, not at import time)."""
    sampling = sampling_from(config, seed)
    if config.backend == "transformers":
        from viral.caption.hf_backend import TransformersCaptioner

        return TransformersCaptioner(config.model, sampling, batch_size=config.batch_size, device=config.device)
    if config.backend == "vllm":
        from viral.caption.vllm_backend import VllmCaptioner

        return VllmCaptioner(config, sampling)
    raise StageError(f"caption.backend {config.backend!r} has no model (precomputed imports descriptions)")
