"""Keep the model fed: read and decode chunk k+1 in threads while chunk k is being generated.

A chunk's images are read (shard by shard, one thread: the reader keeps the current shard) and then
decoded and resized by a pool of `decode_workers` threads (PIL releases the GIL while it decodes and
resamples), each distinct image once even when several prompts use it. All of that runs while the
main thread is inside `generate` for the previous chunk, so on a GPU the engine does not wait for JPEG
decoding between chunks. A broken image becomes a failed Generation for its jobs only.
"""
from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Callable, Iterator, Sequence, TypeVar

from viral.caption.backend import CaptionRequest, Generation, first_line
from viral.caption.geometry import ImageGeometryError, prepare_image
from viral.caption.jobs import ImageReader, Job

Chunk = TypeVar("Chunk")
Prepared = TypeVar("Prepared")


def prefetched(
    chunks: Sequence[Chunk], prepare: Callable[[Chunk], Prepared], executor: Executor
) -> Iterator[tuple[Chunk, Prepared]]:
    """Yield (chunk, prepare(chunk)) in order; chunk k+1 is prepared in `executor` while the caller has chunk k."""
    pending = executor.submit(prepare, chunks[0]) if chunks else None
    for index, chunk in enumerate(chunks):
        prepared = pending.result()
        pending = executor.submit(prepare, chunks[index + 1]) if index + 1 < len(chunks) else None
        yield chunk, prepared


def decode_failure(err: Exception) -> str:
    prefix = "image geometry" if isinstance(err, ImageGeometryError) else "image decode"
    return f"{prefix}: {first_line(err)}"


class ChunkPreparer:
    """chunk of Jobs -> one CaptionRequest (prepared image) or failed Generation per job."""

    def __init__(self, reader: ImageReader, max_pixels: int, decode_pool: ThreadPoolExecutor):
        self.reader = reader
        self.max_pixels = max_pixels
        self.decode_pool = decode_pool

    def _decode(self, data: bytes):
        try:
            return prepare_image(data, self.max_pixels)
        except Exception as err:  # PIL raises many types for damaged bytes
            return Generation.failed(decode_failure(err))

    def __call__(self, chunk: Sequence[Job]) -> list[CaptionRequest | Generation]:
        locations = list(dict.fromkeys((job.shard, job.row) for job in chunk))
        data = [self.reader.read(shard, row) for shard, row in locations]
        images = dict(zip(locations, self.decode_pool.map(self._decode, data)))
        prepared: list[CaptionRequest | Generation] = []
        for job in chunk:
            image = images[(job.shard, job.row)]
            if isinstance(image, Generation):
                prepared.append(image)
            else:
                prepared.append(CaptionRequest(image_id=job.image_sha256, text=job.text, image=image))
        return prepared
