"""Where finished generations go: one cache part per prompt per batch of results, as soon as they exist.

Both the in-process loop and the Ray driver hand their results here in batches (a chunk, or
`shard_items` rows streamed back from the cluster), so a kill loses at most one batch and the next run
generates only what no part holds. Failures are never cached (retried next run); when the first
SYSTEMATIC_FAILURES results all failed, the run stops with the first error: a broken setup, not bad items.
"""
from __future__ import annotations

import logging
from typing import Iterable

from viral.caption.backend import Generation
from viral.caption.cache import CaptionCache
from viral.caption.jobs import Job
from viral.stage import StageError

log = logging.getLogger(__name__)

SYSTEMATIC_FAILURES = 8
LOGGED_FAILURES = 5


class ResultWriter:
    def __init__(self, caches: dict[str, CaptionCache], prompt_hashes: dict[str, str], engine: str, model: str):
        self.caches = caches
        self.prompt_hashes = prompt_hashes
        self.engine = engine
        self.model = model
        self.generated: dict[str, dict[str, dict]] = {prompt: {} for prompt in caches}  # prompt -> key -> entry
        self.failures: dict[str, str] = {}  # key -> error

    def entry(self, job: Job, generation: Generation) -> dict:
        return dict(
            key=job.key,
            description=generation.text,
            backend=self.engine,
            model=self.model,
            prompt_hash=self.prompt_hashes[job.prompt],
            prompt_tokens=generation.prompt_tokens,
            generated_tokens=generation.generated_tokens,
            finish_reason=generation.finish_reason,
        )

    def record(self, results: Iterable[tuple[Job, Generation]]) -> dict[str, int]:
        """Save one batch of results (a part per prompt); return counts of this batch (ok, failed, tokens)."""
        entries: dict[str, dict[str, dict]] = {prompt: {} for prompt in self.caches}
        failed = 0
        for job, generation in results:
            if generation.error is None:
                entries[job.prompt][job.key] = self.entry(job, generation)
                continue
            failed += 1
            self.failures[job.key] = generation.error
            if len(self.failures) <= LOGGED_FAILURES:
                log.warning("item %d (%s, %s) failed: %s", job.item.item_id, job.item.asin, job.prompt, generation.error)
        ok = sum(len(batch) for batch in entries.values())
        if not self.any_generated and not ok and len(self.failures) >= SYSTEMATIC_FAILURES:
            first = next(iter(self.failures.values()))
            raise StageError(f"the first {len(self.failures)} generations all failed; first error: {first}")
        for prompt, batch in entries.items():
            self.caches[prompt].append(batch.values())
            self.generated[prompt].update(batch)
        tokens = sum(entry["generated_tokens"] for batch in entries.values() for entry in batch.values())
        return dict(ok=ok, failed=failed, generated_tokens=tokens)

    @property
    def any_generated(self) -> bool:
        return any(self.generated.values())
