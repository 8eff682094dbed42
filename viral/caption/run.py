"""The caption stage: items + images + prompts in, `data/captions/<dataset>/<prompt>.parquet` out.

One run produces every prompt in `caption.prompts` (one table and one report each): model backends
load the model once and caption both prompts of each image together. They go through the content
cache: jobs whose key is cached are reused, the rest are generated in chunks of `caption.shard_items`
generations (an item's prompts side by side), and each finished chunk is saved as cache parts before the next starts, so an interrupted run
resumes where it stopped and a rerun with nothing changed generates nothing (the model is not even
loaded). `transformers` / `vllm` run in this process (`caption_locally`); `ray` runs the same engines
on a Ray cluster (`viral.caption.ray_backend`). `precomputed` imports files.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from viral.caption.backend import Captioner, Generation, make_captioner, sampling_from
from viral.caption.config import CaptionConfig
from viral.caption.feed import ChunkPreparer, prefetched
from viral.caption.jobs import ImageReader, Item, Job, Plan, index_images, plan_captions, read_items
from viral.caption.output import empty_row, output_table
from viral.caption.precomputed import check_coverage, read_descriptions
from viral.caption.provenance import engine_settings, library_versions
from viral.caption.writer import ResultWriter
from viral.data.download import brings_features
from viral.io import atomic_dir, write_parquet
from viral.params import Params
from viral.run_report import write_run_report
from viral.stage import StageError

log = logging.getLogger(__name__)

CaptionerFactory = Callable[[CaptionConfig, int], Captioner]


def run_caption(params: Params, make: CaptionerFactory = make_captioner) -> dict[str, dict]:
    """Write the caption table and report of every prompt in `caption.prompts`; return prompt -> report."""
    config = params.caption
    start = time.perf_counter()
    items = read_items(Path("data/prepared") / params.dataset)
    if brings_features(Path("data/raw") / params.dataset):
        results = {prompt: skip_captions(config, prompt, items) for prompt in config.prompts}
    elif config.backend == "precomputed":
        results = {prompt: import_precomputed(config, params.dataset, prompt, items) for prompt in config.prompts}
    else:
        results = caption_with_model(params, items, make)
    reports = {}
    # The folder holds exactly this run's prompts, replaced whole (never half old, half new).
    with atomic_dir(Path("data/captions") / params.dataset) as out_dir:
        for prompt, (rows, report, provenance) in results.items():
            write_parquet(out_dir / f"{prompt}.parquet", output_table(rows, provenance))
            reports[prompt] = dict(prompt=prompt, backend=config.backend, model=provenance["model"], **report)
            log.info("caption %s: %s", prompt, {k: v for k, v in report.items() if k not in ("prompt", "model")})
    # Outside the output: its timings must not re-run encode.
    write_run_report("caption", {"wall_seconds": round(time.perf_counter() - start, 3), "prompts": reports})
    return reports


def skip_captions(config: CaptionConfig, prompt: str, items: list[Item]) -> tuple[list[dict], dict, dict]:
    """No captions for a dataset that brings its own features (an MMRec folder: it has no images)."""
    reason = "the dataset brings its own features (MMRec folder); nothing to caption"
    rows = [empty_row(item.item_id, item.asin, "missing_image", config.backend, config.model, None) for item in items]
    report = dict(items=len(items), captioned=0, from_cache=0, failed=0, missing_image=len(items), skipped=reason)
    return rows, report, dict(prompt=prompt, backend=config.backend, model=config.model, skipped=reason)


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
    params: Params, items: list[Item], make: CaptionerFactory
) -> dict[str, tuple[list[dict], dict, dict]]:
    config = params.caption
    seed = params.data_seed
    index = index_images(Path("data/images") / params.dataset)
    plan = plan_captions(config, seed, params.dataset, items, index)
    writer = ResultWriter(plan.caches, plan.prompt_hashes, config.engine, config.model)
    timings = dict(generate_seconds=0.0)
    if plan.todo and config.backend == "ray":
        from viral.caption.ray_backend import caption_with_ray

        timings = caption_with_ray(config, seed, plan, index, writer)
    elif plan.todo:
        timings["generate_seconds"] = caption_locally(config, seed, plan.todo, ImageReader(index), writer, make)
    seconds = timings["generate_seconds"]
    for cache in plan.caches.values():
        cache.compact()

    settings = engine_settings(config, seed)
    versions = library_versions()
    generations = sum(len(entries) for entries in writer.generated.values())
    new_tokens = sum(e["generated_tokens"] for entries in writer.generated.values() for e in entries.values())
    # One engine serves every prompt, so speed is the run's (all prompts together), the same in each report.
    run = dict(
        prompts=plan.prompts,
        run_generations=generations,
        generate_seconds=round(seconds, 3),
        items_per_s=round(generations / seconds, 3) if seconds else 0.0,  # generations per second
        generated_tokens_per_s=round(new_tokens / seconds, 3) if seconds else 0.0,
        **{name: round(value, 3) for name, value in timings.items() if name != "generate_seconds"},
    )
    results = {}
    for prompt in plan.prompts:
        rows, report = prompt_rows(config, plan, writer, prompt, len(items))
        report.update(run, generations=len(writer.generated[prompt]), prompt_hash=plan.prompt_hashes[prompt],
                      engine_settings=settings, versions=versions)  # fmt: skip
        provenance = dict(
            prompt=prompt, template=plan.templates[prompt], backend=config.engine, model=config.model,
            sampling=sampling_from(config, seed).key(), max_pixels=config.max_pixels, engine_settings=settings,
            versions=versions,
        )  # fmt: skip
        results[prompt] = (rows, report, provenance)
    return results


def prompt_rows(
    config: CaptionConfig, plan: Plan, writer: ResultWriter, prompt: str, n_items: int
) -> tuple[list[dict], dict]:
    """The table rows of one prompt (every item) and its counts."""
    prompt_hash = plan.prompt_hashes[prompt]
    cached, generated = plan.cached[prompt], writer.generated[prompt]
    rows = [
        empty_row(item.item_id, item.asin, "missing_image", config.engine, config.model, prompt_hash)
        for item in plan.without_image
    ]
    from_cache = failed = 0
    for job in plan.jobs[prompt]:
        entry = cached.get(job.key) or generated.get(job.key)
        if entry is None:
            failed += 1
            rows.append(empty_row(job.item.item_id, job.item.asin, "failed", config.engine, config.model, prompt_hash))
            continue
        from_cache += job.key in cached
        fields = {name: value for name, value in entry.items() if name != "key"}
        rows.append(dict(itemID=job.item.item_id, asin=job.item.asin, status="ok", **fields))
    jobs = len(plan.jobs[prompt])
    report = dict(
        items=n_items,
        captioned=jobs - from_cache - failed,
        from_cache=from_cache,
        failed=failed,
        missing_image=len(plan.without_image),
    )
    return rows, report


def caption_locally(
    config: CaptionConfig, seed: int, todo: list[Job], reader: ImageReader, writer: ResultWriter,
    make: CaptionerFactory,
) -> float:
    """Generate `todo` in this process chunk by chunk, the next chunk decoded while this one generates;
    return the seconds spent in `generate`."""
    captioner = make(config, seed)
    chunks = [todo[start : start + config.shard_items] for start in range(0, len(todo), config.shard_items)]
    seconds = 0.0
    with (
        ThreadPoolExecutor(config.decode_workers, thread_name_prefix="decode") as decode_pool,
        ThreadPoolExecutor(1, thread_name_prefix="prefetch") as prefetch,
        tqdm(total=len(todo), unit="generation", desc="caption") as progress,
    ):
        preparer = ChunkPreparer(reader, config.max_pixels, decode_pool)
        for chunk, prepared in prefetched(chunks, preparer, prefetch):
            tick = time.perf_counter()
            results = generate_prepared(captioner, prepared)
            elapsed = time.perf_counter() - tick
            seconds += elapsed
            counts = writer.record(zip(chunk, results))
            log.info(
                "chunk of %d: %.1f generations/s, %.1f generated tokens/s",
                len(chunk), len(chunk) / elapsed, counts["generated_tokens"] / elapsed,
            )  # fmt: skip
            progress.update(len(chunk))
    return seconds


def generate_prepared(captioner: Captioner, prepared: list) -> list[Generation]:
    """One `generate` call for the prepared requests; failed preparations keep their place."""
    results = list(prepared)
    positions = [i for i, entry in enumerate(prepared) if not isinstance(entry, Generation)]
    if positions:
        for i, generation in zip(positions, captioner.generate([prepared[i] for i in positions])):
            results[i] = generation
    return results
