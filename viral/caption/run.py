"""The caption stage: items + images + a prompt in, `data/captions/<dataset>/<prompt>.parquet` out.

Model backends (`transformers`, `vllm`) go through the content cache: items whose key is cached are
reused, the rest are captioned in chunks of `caption.shard_items`, and each finished chunk is saved
as a cache part before the next starts, so an interrupted run resumes where it stopped and a rerun
with nothing changed generates nothing (the model is not even loaded). `precomputed` imports a file.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from viral.caption.backend import (
    Captioner,
    CaptionRequest,
    Generation,
    first_line,
    make_captioner,
    prepare_image,
    sampling_from,
)
from viral.caption.cache import CaptionCache, caption_key
from viral.caption.config import CaptionConfig
from viral.caption.output import empty_row, output_table
from viral.caption.precomputed import check_coverage, read_descriptions
from viral.caption.prompts import load_templates, render, template_for, text_hash
from viral.data.images import load_images
from viral.io import write_parquet
from viral.params import Params
from viral.run_report import write_run_report
from viral.stage import StageError

log = logging.getLogger(__name__)

CaptionerFactory = Callable[[CaptionConfig, int], Captioner]
# Stop early (keeping the cache) when this many items failed and none succeeded: a broken setup, not bad items.
SYSTEMATIC_FAILURES = 8


@dataclass(frozen=True)
class Item:
    item_id: int
    asin: str
    title: str


@dataclass(frozen=True)
class Job:
    item: Item
    key: str
    text: str
    image_row: int  # row of the item's image in the images table
    image_sha256: str


def read_items(prepared_dir: Path) -> list[Item]:
    path = prepared_dir / "items.parquet"
    if not path.is_file():
        raise StageError(f"{path}: not found (run the prepare stage first)")
    table = pq.read_table(path, columns=["itemID", "asin", "title"]).sort_by("itemID")
    return [Item(int(i), a, t or "") for i, a, t in zip(*(table.column(c).to_pylist() for c in table.column_names))]


def run_caption(params: Params, prompt: str, make: CaptionerFactory = make_captioner) -> dict:
    """Write the caption table and its report for `prompt`; return the report."""
    config = params.caption
    if prompt not in config.prompts:
        raise StageError(f"prompt {prompt!r} is not in caption.prompts ({', '.join(config.prompts)})")
    start = time.perf_counter()
    items = read_items(Path("data/prepared") / params.dataset)
    if config.backend == "precomputed":
        rows, report, provenance = import_precomputed(config, params.dataset, prompt, items)
    else:
        rows, report, provenance = caption_with_model(params, prompt, items, make)
    out_dir = Path("data/captions") / params.dataset
    write_parquet(out_dir / f"{prompt}.parquet", output_table(rows, provenance))
    report = dict(prompt=prompt, backend=config.backend, model=provenance["model"], **report)
    report["wall_seconds"] = round(time.perf_counter() - start, 3)
    write_run_report(f"caption/{prompt}", report)  # outside the output: its timings must not re-run encode
    log.info("caption %s: %s", prompt, {k: v for k, v in report.items() if k not in ("prompt", "model")})
    return report


def import_precomputed(
    config: CaptionConfig, dataset: str, prompt: str, items: list[Item]
) -> tuple[list[dict], dict, dict]:
    if prompt not in config.precomputed:
        known = ", ".join(config.precomputed) or "none"
        raise StageError(f"caption.precomputed: no file for prompt {prompt!r} (it has {known})")
    path = config.precomputed[prompt].replace("{dataset}", dataset)
    descriptions = read_descriptions(path)
    rows, matched = [], set()
    for item in items:
        key = item.asin if descriptions.key == "asin" else item.item_id
        text = descriptions.text.get(key)
        row = empty_row(item.item_id, item.asin, "ok" if text else "missing", "precomputed", path, None)
        if text:
            row["description"] = text
            matched.add(key)
        rows.append(row)
    check_coverage(path, descriptions, len(matched), len(items), dataset, config.min_coverage)
    report = dict(
        items=len(items),
        captioned=len(matched),
        from_cache=0,
        failed=0,
        missing=len(items) - len(matched),
        coverage=round(len(matched) / len(items), 6) if items else 0.0,
        unmatched_in_file=len(descriptions.text) - len(matched),
        source=path,
        generate_seconds=0.0,
        items_per_s=0.0,
        generated_tokens_per_s=0.0,
    )
    return rows, report, dict(prompt=prompt, backend="precomputed", model=path, key=descriptions.key)


def caption_with_model(
    params: Params, prompt: str, items: list[Item], make: CaptionerFactory
) -> tuple[list[dict], dict, dict]:
    config = params.caption
    template = template_for(load_templates(config.prompt_file), prompt, config.prompt_file)
    prompt_hash = text_hash(template)
    sampling = sampling_from(config, params.data_seed)
    try:
        images = load_images(Path("data/images") / params.dataset)
    except FileNotFoundError as err:
        raise StageError(str(err)) from None
    image_rows = {item_id: row for row, item_id in enumerate(images.column("itemID").to_pylist())}
    shas = images.column("sha256").to_pylist()

    jobs, rows = [], {}
    for item in items:
        if item.item_id not in image_rows:
            rows[item.item_id] = empty_row(
                item.item_id, item.asin, "missing_image", config.backend, config.model, prompt_hash
            )
            continue
        row = image_rows[item.item_id]
        text = render(template, item.title)
        key = caption_key(
            image_sha256=shas[row], prompt_text=text, backend=config.backend, model=config.model,
            sampling=sampling.key(), max_pixels=config.max_pixels,
        )  # fmt: skip
        jobs.append(Job(item, key, text, row, shas[row]))

    cache = CaptionCache(Path(config.cache_dir) / params.dataset / prompt)
    cached = cache.load()
    from_cache = sum(job.key in cached for job in jobs)
    # Items with the same image and rendered prompt (e.g. size variants of one product) share one generation.
    todo = list({job.key: job for job in reversed(jobs) if job.key not in cached}.values())[::-1]
    log.info(
        "caption %s: %d items, %d with images, %d cached, %d generations to run",
        prompt, len(items), len(jobs), from_cache, len(todo),
    )  # fmt: skip
    generated, seconds = _caption_todo(config, params.data_seed, todo, images, prompt_hash, cache, make)
    cached.update(generated)
    cache.compact()

    for job in jobs:
        item = job.item
        if job.key in cached:
            entry = cached[job.key]
            fields = {name: value for name, value in entry.items() if name != "key"}
            rows[item.item_id] = dict(itemID=item.item_id, asin=item.asin, status="ok", **fields)
        else:
            rows[item.item_id] = empty_row(item.item_id, item.asin, "failed", config.backend, config.model, prompt_hash)
    new_tokens = sum(entry["generated_tokens"] for entry in generated.values())
    failed = sum(row["status"] == "failed" for row in rows.values())
    report = dict(
        items=len(items),
        captioned=len(jobs) - from_cache - failed,
        from_cache=from_cache,
        failed=failed,
        missing_image=len(items) - len(jobs),
        generations=len(generated),
        generate_seconds=round(seconds, 3),
        items_per_s=round(len(generated) / seconds, 3) if seconds else 0.0,  # generations per second
        generated_tokens_per_s=round(new_tokens / seconds, 3) if seconds else 0.0,
        prompt_hash=prompt_hash,
    )
    provenance = dict(
        prompt=prompt, template=template, backend=config.backend, model=config.model,
        sampling=sampling.key(), max_pixels=config.max_pixels,
    )  # fmt: skip
    return list(rows.values()), report, provenance


def _caption_todo(
    config: CaptionConfig, seed: int, todo: list[Job], images: pa.Table, prompt_hash: str, cache: CaptionCache,
    make: CaptionerFactory,
) -> tuple[dict[str, dict], float]:
    """Caption `todo` chunk by chunk, saving each chunk to the cache; return (new entries, seconds)."""
    generated: dict[str, dict] = {}
    failures: dict[int, str] = {}
    if not todo:
        return generated, 0.0
    captioner = make(config, seed)
    image_column = images.column("image")
    seconds = 0.0
    with tqdm(total=len(todo), unit="item", desc="caption") as progress:
        for start in range(0, len(todo), config.shard_items):
            chunk = todo[start : start + config.shard_items]
            tick = time.perf_counter()
            results = _caption_chunk(captioner, chunk, image_column, config.max_pixels)
            elapsed = time.perf_counter() - tick
            seconds += elapsed
            entries = {}
            for job, generation in zip(chunk, results):
                if generation.error is None:
                    entries[job.key] = _cache_entry(job.key, generation, captioner, prompt_hash)
                else:
                    failures[job.item.item_id] = generation.error
                    if len(failures) <= 5:
                        log.warning("item %d (%s) failed: %s", job.item.item_id, job.item.asin, generation.error)
            if not generated and not entries and len(failures) >= SYSTEMATIC_FAILURES:
                first = next(iter(failures.values()))
                raise StageError(f"the first {len(failures)} items all failed; first error: {first}")
            cache.append(entries.values())
            generated.update(entries)
            tokens = sum(entry["generated_tokens"] for entry in entries.values())
            log.info(
                "chunk of %d: %.1f items/s, %.1f generated tokens/s", len(chunk), len(chunk) / elapsed, tokens / elapsed
            )
            progress.update(len(chunk))
    return generated, seconds


def _caption_chunk(
    captioner: Captioner, chunk: list[Job], image_column: pa.ChunkedArray, max_pixels: int
) -> list[Generation]:
    """Decode the chunk's images (a broken one fails alone), then one `generate` call for the rest."""
    results: list[Generation | None] = [None] * len(chunk)
    requests, positions = [], []
    for position, job in enumerate(chunk):
        data = image_column[job.image_row].as_py()
        try:
            image = prepare_image(data, max_pixels)
        except Exception as err:  # PIL raises many types for damaged bytes
            results[position] = Generation.failed(f"image decode: {first_line(err)}")
            continue
        requests.append(CaptionRequest(image_id=job.image_sha256, text=job.text, image=image))
        positions.append(position)
    for position, generation in zip(positions, captioner.generate(requests) if requests else []):
        results[position] = generation
    return results


def _cache_entry(key: str, generation: Generation, captioner: Captioner, prompt_hash: str) -> dict:
    return dict(
        key=key,
        description=generation.text,
        backend=captioner.backend,
        model=captioner.model,
        prompt_hash=prompt_hash,
        prompt_tokens=generation.prompt_tokens,
        generated_tokens=generation.generated_tokens,
        finish_reason=generation.finish_reason,
    )
