"""What a caption run records about how it generated: engine settings and library versions.

Greedy decoding is deterministic for one engine, one batch composition and one set of kernels; vLLM's
batched output can otherwise change with what else is in the batch. So the caption table's metadata
and report say which engine ran, with which settings (batching, pixel cap, batch-invariant mode,
executor) and which library versions, to tell a reader what a rerun must match to reproduce it.
"""
from __future__ import annotations

import platform
from importlib import metadata
from typing import TYPE_CHECKING

from viral.caption.geometry import GEOMETRY

if TYPE_CHECKING:
    from viral.caption.config import CaptionConfig

LIBRARIES = ("torch", "transformers", "tokenizers", "pillow", "vllm", "ray")


def library_versions() -> dict[str, str | None]:
    """Installed versions (None = not installed), read from package metadata without importing them."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def engine_settings(config: "CaptionConfig", seed: int) -> dict:
    """Everything besides the cache key that can change generated text (not the sampling: that is in the key)."""
    settings: dict = dict(engine=config.engine, geometry=GEOMETRY, max_pixels=config.max_pixels)
    if config.engine == "transformers":
        settings.update(batch_size=config.batch_size, device=config.device)
    else:
        from viral.caption.vllm_backend import engine_env, engine_kwargs

        settings.update(engine_kwargs(config, seed), env=engine_env(config), batch_invariant=config.batch_invariant)
    if config.backend == "ray":
        ray = config.ray
        settings["executor"] = dict(
            name="ray", address=ray.address or "local", replicas=ray.replicas, batch_size=ray.batch_size
        )
    else:
        settings["executor"] = dict(name="local", chunk=config.shard_items)
    return settings
