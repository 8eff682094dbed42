"""What a caption run must generate: items, where their images lie, cache keys, the to-do list.

Every backend with a model (in-process or Ray) starts from the same plan, so they write the same cache
keys and resume the same way: a job is one (item, prompt); its key hashes everything that changes the
output; jobs whose key is cached are reused, the rest (one per distinct key) are the to-do list, ordered
by where their image lies so that the images are read shard by shard and an item's prompts sit together.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from viral.caption.backend import sampling_from
from viral.caption.cache import CaptionCache, caption_key
from viral.caption.config import CaptionConfig
from viral.caption.prompts import load_templates, render, template_for, text_hash
from viral.data.image_store import shard_paths
from viral.stage import StageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    item_id: int
    asin: str
    title: str


@dataclass(frozen=True)
class Job:
    item: Item
    prompt: str  # prompt name (title | plain)
    key: str
    text: str  # rendered instruction
    image_sha256: str
    shard: int  # index into ImageIndex.shards
    row: int  # row of the image in that shard


def read_items(prepared_dir: Path) -> list[Item]:
    path = prepared_dir / "items.parquet"
    if not path.is_file():
        raise StageError(f"{path}: not found (run the prepare stage first)")
    table = pq.read_table(path, columns=["itemID", "asin", "title"]).sort_by("itemID")
    return [Item(int(i), a, t or "") for i, a, t in zip(*(table.column(c).to_pylist() for c in table.column_names))]


@dataclass(frozen=True)
class ImageIndex:
    """Where each item's image is: its shard and row, and its content hash. No image bytes are read."""

    shards: list[Path]
    location: dict[int, tuple[int, int]]  # itemID -> (shard index, row)
    sha256: dict[int, str]


def index_images(images_dir: Path) -> ImageIndex:
    if not images_dir.is_dir():
        raise StageError(f"{images_dir}: no images folder (run the images stage first)")
    shards = shard_paths(images_dir)
    location, sha256 = {}, {}
    for shard, path in enumerate(shards):
        table = pq.read_table(path, columns=["itemID", "sha256"])
        for row, (item_id, digest) in enumerate(zip(*(table.column(c).to_pylist() for c in ("itemID", "sha256")))):
            location[item_id] = (shard, row)
            sha256[item_id] = digest
    return ImageIndex(shards, location, sha256)


class ImageReader:
    """Image bytes by (shard, row), keeping the last shard's image column: to-do lists walk shards in order."""

    def __init__(self, index: ImageIndex):
        self.index = index
        self._shard: int | None = None
        self._column = None

    def read(self, shard: int, row: int) -> bytes:
        if shard != self._shard:
            self._column = pq.read_table(self.index.shards[shard], columns=["image"]).column("image")
            self._shard = shard
        return self._column[row].as_py()


@dataclass
class Plan:
    prompts: list[str]
    templates: dict[str, str]
    prompt_hashes: dict[str, str]
    jobs: dict[str, list[Job]]  # prompt -> every job of an item with an image
    without_image: list[Item]
    caches: dict[str, CaptionCache]
    cached: dict[str, dict[str, dict]]  # prompt -> key -> cached entry
    todo: list[Job]  # distinct keys still to generate, in image order


def plan_captions(config: CaptionConfig, seed: int, dataset: str, items: list[Item], index: ImageIndex) -> Plan:
    templates = load_templates(config.prompt_file)
    sampling_key = sampling_from(config, seed).key()
    plan = Plan(list(config.prompts), {}, {}, {}, [], {}, {}, [])
    for prompt in config.prompts:
        plan.templates[prompt] = template_for(templates, prompt, config.prompt_file)
        plan.prompt_hashes[prompt] = text_hash(plan.templates[prompt])
        plan.caches[prompt] = CaptionCache(Path(config.cache_dir) / dataset / prompt)
        plan.cached[prompt] = plan.caches[prompt].load()
        plan.jobs[prompt] = []
    todo: dict[tuple[str, str], Job] = {}  # (prompt, key): each prompt has its own cache
    for item in items:
        if item.item_id not in index.location:
            plan.without_image.append(item)
            continue
        shard, row = index.location[item.item_id]
        sha = index.sha256[item.item_id]
        for prompt in config.prompts:
            text = render(plan.templates[prompt], item.title)
            key = caption_key(
                image_sha256=sha, prompt_text=text, backend=config.engine, model=config.model,
                sampling=sampling_key, max_pixels=config.max_pixels,
            )  # fmt: skip
            job = Job(item, prompt, key, text, sha, shard, row)
            plan.jobs[prompt].append(job)
            # Items with the same image and rendered prompt (size variants of one product) share one generation.
            if key not in plan.cached[prompt] and (prompt, key) not in todo:
                todo[prompt, key] = job
    plan.todo = sorted(todo.values(), key=lambda job: (job.shard, job.row, plan.prompts.index(job.prompt)))
    for prompt in config.prompts:
        cached = sum(job.key in plan.cached[prompt] for job in plan.jobs[prompt])
        log.info("caption %s: %d items, %d with images, %d cached", prompt, len(items), len(plan.jobs[prompt]), cached)
    log.info("caption: %d generations to run for %s", len(plan.todo), ", ".join(plan.prompts))
    return plan
