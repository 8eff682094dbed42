"""The download stage: the Amazon 2014 raw files of a dataset into `data/raw/<dataset>/`, or, for
`dataset: synthetic`, the generated files in the same formats. Either way a `manifest.json` records
every file's source, size and sha256.

Real downloads are kept complete in a download cache (`download.cache_dir`, outside the DVC output)
and hard-linked into the raw folder: DVC empties an output before re-running its stage, and a rerun
must neither lose a multi-GB file nor a half-finished `.part` (which resumes with HTTP Range). A cached
file is served again only while it still matches its record (size, sha256) and looks like its format
(gzip magic), so deleting a damaged raw file and re-running the stage really downloads it again.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from viral.data import amazon
from viral.data.config import DownloadConfig
from viral.data.http import fetch_from_mirrors, sha256_file
from viral.io import atomic_dir, link_or_copy, write_json
from viral.params import Params

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
GZIP_MAGIC = b"\x1f\x8b"


def expected_magic(name: str) -> bytes:
    """The first bytes file `name` must have (gzip's for `.gz`; none known for the `.b` features)."""
    return GZIP_MAGIC if name.endswith(".gz") else b""


def dataset_files(cat: str, image_features: bool) -> list[str]:
    names = [amazon.reviews_name(cat), amazon.meta_name(cat)]
    if image_features:
        names.append(amazon.image_features_name(cat))
    return names


def _file_entry(path: Path, source: str) -> dict[str, Any]:
    return {"url": source, "size": path.stat().st_size, "sha256": sha256_file(path).hexdigest()}


def _cached_entry(cache_dir: Path, name: str) -> dict[str, Any] | None:
    """The recorded entry of a completed download in the cache, if the file is still intact: same size
    and sha256 as recorded, and the right first bytes (a page cached by an older, unchecked run is not)."""
    path, record = cache_dir / name, cache_dir / f"{name}.json"
    if not (path.is_file() and record.is_file()):
        return None
    try:
        entry = json.loads(record.read_text())
    except ValueError:
        entry = {}
    with open(path, "rb") as stream:
        head = stream.read(len(expected_magic(name)))
    intact = (entry.get("size") == path.stat().st_size and head == expected_magic(name)
              and entry.get("sha256") == sha256_file(path).hexdigest())
    if not intact:
        log.warning("%s: the cached copy is damaged or not the file; downloading it again", path)
        path.unlink()
        record.unlink()
        return None
    return entry


def download_dataset(raw_dir: Path, cat: str, config: DownloadConfig, show_progress: bool = True) -> dict:
    """Fetch each file of the category (skipping intact cached ones) and write the manifest."""
    cache_dir = Path(config.cache_dir)
    files = {}
    for name in dataset_files(cat, config.image_features):
        entry = _cached_entry(cache_dir, name)
        expected = config.sha256.get(name)
        if entry is not None and (not expected or entry["sha256"] == expected.lower()):
            log.info("%s: already downloaded (%d bytes)", name, entry["size"])
        else:
            urls = [f"{mirror.rstrip('/')}/{name}" for mirror in config.mirrors]
            got = fetch_from_mirrors(urls, cache_dir / name, retries=config.retries, timeout_s=config.timeout_s,
                                     backoff_s=config.backoff_s, expected_sha256=expected,
                                     magic=expected_magic(name), show_progress=show_progress)
            entry = {"url": got.url, "size": got.size, "sha256": got.sha256}
            write_json(cache_dir / f"{name}.json", entry)
        files[name] = entry
    manifest = {"category": cat, "files": files}
    with atomic_dir(raw_dir) as tmp:
        for name in files:
            link_or_copy(cache_dir / name, tmp / name)
        write_json(tmp / MANIFEST, manifest)
    return manifest


def generate_dataset(raw_dir: Path, config: DownloadConfig, seed: int) -> dict:
    """Generate the synthetic raw files (temporary folder, then rename) and their manifest."""
    from viral.data.synthetic import generate

    with atomic_dir(raw_dir) as tmp:
        generate(tmp, config.synthetic, seed)
        files = {
            path.relative_to(tmp).as_posix(): _file_entry(path, f"generated:synthetic:seed={seed}")
            for path in sorted(tmp.rglob("*")) if path.is_file()
        }
        manifest = {"category": config.synthetic.category, "seed": seed, "files": files}
        write_json(tmp / MANIFEST, manifest)
    return manifest


def run_download(params: Params) -> None:
    raw_dir = Path("data/raw") / params.dataset
    if params.dataset == "synthetic":
        manifest = generate_dataset(raw_dir, params.download, params.data_seed)
    else:
        cat = amazon.category(params.dataset)
        manifest = download_dataset(raw_dir, cat, params.download)
    total = sum(entry["size"] for entry in manifest["files"].values())
    log.info("%s: %d files, %.1f MB", raw_dir, len(manifest["files"]), total / 1e6)
