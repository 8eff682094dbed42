"""The images stage: fetch each kept item's image into a few Parquet shards plus a per-item status.

Items are cut into shards of `images.shard_items` in itemID order. Each shard is fetched with a
bounded thread pool (HTTP with retries and timeouts; a relative imUrl is a file under the raw folder,
as in the synthetic dataset), every image is decoded with PIL, and the shard is written to a work
cache outside the DVC output, keyed by a hash of its items. A rerun reuses every completed shard
(so an interrupted run resumes, and `dvc repro` after a change refetches only what changed); shards
with transient failures (timeout, error) are fetched again. The output folder is then assembled at once.
Missing or broken images are recorded in `status.parquet`, never fatal.
"""
from __future__ import annotations

import hashlib
import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from viral.data.config import ImagesConfig
from viral.data.http import HTTPStatusError, TransientError, get_bytes
from viral.data.image_store import (
    IMAGE_SCHEMA,
    STATUS_FILE,
    STATUS_SCHEMA,
    STATUSES,
    load_image_status,
    load_images,
    shard_name,
)
from viral.data.prepared import load_prepared
from viral.io import atomic_dir, link_or_copy, write_json, write_parquet
from viral.params import Params
from viral.run_report import per_second, seconds_since, write_run_report
from viral.stage import StageError

__all__ = ["load_images", "load_image_status", "fetch_images", "run_images"]

log = logging.getLogger(__name__)

RETRY_ON_RERUN = ("timeout", "error")  # transient outcomes: a rerun fetches these shards again


@dataclass(frozen=True)
class Outcome:
    status: str
    detail: str = ""
    image: bytes | None = None
    width: int = 0
    height: int = 0


def decode(data: bytes, content_type: str = "") -> Outcome:
    """`ok` with the size when `data` fully decodes as an image, else `not_image` saying what it was."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes every pixel: catches truncated files, not just a valid header
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        kind = f"content-type {content_type!r}, " if content_type else ""
        return Outcome("not_image", f"{kind}{len(data)} bytes starting {data[:16]!r}: {err}")
    return Outcome("ok", image=data, width=width, height=height)


def fetch_one(im_url: str, raw_dir: Path, config: ImagesConfig) -> Outcome:
    """Fetch and decode one image; every failure becomes a status, never an exception."""
    im_url = (im_url or "").strip()
    if not im_url:
        return Outcome("empty_url")
    try:
        if im_url.startswith(("http://", "https://")):
            data, content_type = get_bytes(im_url, config.timeout_s, config.retries, config.backoff_s)
        else:
            data, content_type = (raw_dir / im_url).read_bytes(), ""
    except HTTPStatusError as err:
        return Outcome("http_error", str(err))
    except TransientError as err:
        if err.timeout:
            return Outcome("timeout", str(err))
        return Outcome("http_error" if str(err).startswith("HTTP ") else "error", str(err))
    except (OSError, ValueError) as err:
        return Outcome("error", f"{type(err).__name__}: {err}")
    return decode(data, content_type)


def shard_key(items: pd.DataFrame, raw_dir: Path) -> str:
    """Hash of what a shard fetches: its items and URLs (and, for local files, their size and mtime)."""
    digest = hashlib.sha256()
    for item_id, asin, url in zip(items["itemID"], items["asin"], items["imUrl"]):
        digest.update(f"{item_id}\t{asin}\t{url}\n".encode())
        if url and not url.startswith(("http://", "https://")):
            path = raw_dir / url
            if path.is_file():
                stat = path.stat()
                digest.update(f"{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _fetch_shard(items: pd.DataFrame, raw_dir: Path, config: ImagesConfig, pool: ThreadPoolExecutor,
                 progress) -> tuple[pa.Table, pa.Table]:
    def task(url: str) -> Outcome:
        outcome = fetch_one(url, raw_dir, config)
        progress.update(1)
        return outcome

    outcomes = list(pool.map(task, items["imUrl"].tolist()))
    ok = [(item_id, asin, o) for item_id, asin, o in zip(items["itemID"], items["asin"], outcomes) if o.status == "ok"]
    images = pa.table(
        {
            "itemID": [int(i) for i, _, _ in ok],
            "asin": [a for _, a, _ in ok],
            "image": [o.image for _, _, o in ok],
            "sha256": [hashlib.sha256(o.image).hexdigest() for _, _, o in ok],
            "width": [o.width for _, _, o in ok],
            "height": [o.height for _, _, o in ok],
        },
        schema=IMAGE_SCHEMA,
    )
    status = pa.table(
        {
            "itemID": items["itemID"].astype("int64").tolist(),
            "asin": items["asin"].tolist(),
            "status": [o.status for o in outcomes],
            "detail": [o.detail for o in outcomes],
        },
        schema=STATUS_SCHEMA,
    )
    return images, status


def _cached_shard(cache: Path, key: str) -> tuple[Path, pa.Table] | None:
    """A completed cached shard (its status file is written last, so it marks completion)."""
    images, status = cache / f"{key}.images.parquet", cache / f"{key}.status.parquet"
    if not (images.is_file() and status.is_file()):
        return None
    table = pq.read_table(status, schema=STATUS_SCHEMA)
    if set(table.column("status").to_pylist()) & set(RETRY_ON_RERUN):
        return None
    return images, table


def fetch_images(items: pd.DataFrame, raw_dir: Path, out_dir: Path, cache: Path, config: ImagesConfig) -> dict:
    """Fetch the images of `items` (itemID, asin, imUrl) into `out_dir`; returns the report.

    `out_dir/report.json` holds what follows from the items (counts per status, shards); how the run went
    (seconds, throughput, shards reused) is only in the returned report, for the stage's run report."""
    from tqdm import tqdm

    start = time.perf_counter()
    items = items.sort_values("itemID", ignore_index=True)
    items["imUrl"] = items["imUrl"].fillna("")
    cache.mkdir(parents=True, exist_ok=True)
    chunks = [items.iloc[i:i + config.shard_items] for i in range(0, len(items), config.shard_items)]
    keys = [shard_key(chunk, raw_dir) for chunk in chunks]
    shards: list[tuple[Path, pa.Table]] = []
    reused = 0
    with ThreadPoolExecutor(max_workers=config.concurrency) as pool, \
            tqdm(total=len(items), unit="img", desc="images", mininterval=1.0) as progress:
        for chunk, key in zip(chunks, keys):
            cached = _cached_shard(cache, key)
            if cached is not None:
                reused += 1
                progress.update(len(chunk))
                shards.append(cached)
                continue
            images, status = _fetch_shard(chunk, raw_dir, config, pool, progress)
            write_parquet(cache / f"{key}.images.parquet", images)
            write_parquet(cache / f"{key}.status.parquet", status)  # last: marks the shard complete
            shards.append((cache / f"{key}.images.parquet", status))
    for stale in cache.glob("*.parquet"):  # shards of an older item list
        if stale.name.split(".")[0] not in keys:
            stale.unlink()
    status = pa.concat_tables([table for _, table in shards]) if shards else STATUS_SCHEMA.empty_table()
    counts = pd.Series(status.column("status").to_pylist()).value_counts()
    report = {
        "items": len(items),
        "status": {name: int(counts.get(name, 0)) for name in STATUSES},
        "shards": len(shards),
    }
    with atomic_dir(out_dir) as tmp:
        for index, (images_path, _) in enumerate(shards):
            link_or_copy(images_path, tmp / shard_name(index))
        pq.write_table(status, tmp / STATUS_FILE)
        write_json(tmp / "report.json", report)
    seconds = seconds_since(start)
    return {**report, "shards_reused": reused, "seconds": seconds, "items_per_s": per_second(len(items), seconds),
            "concurrency": config.concurrency}


def run_images(params: Params) -> None:
    prepared = Path("data/prepared") / params.dataset
    if not prepared.is_dir():
        raise StageError(f"{prepared}: not found (run the prepare stage first)")
    _, items = load_prepared(prepared)
    raw_dir = Path("data/raw") / params.dataset
    cache = Path(params.images.cache_dir) / params.dataset
    report = fetch_images(items[["itemID", "asin", "imUrl"]], raw_dir, Path("data/images") / params.dataset,
                          cache, params.images)
    write_run_report("images", {"dataset": params.dataset, **report})
    log.info("images %s: %s in %.1f s (%s items/s, %d of %d shards reused)", params.dataset, report["status"],
             report["seconds"], report["items_per_s"], report["shards_reused"], report["shards"])
