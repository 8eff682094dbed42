"""The download stage: everything a dataset needs, gathered into `data/raw/<dataset>/` with a manifest.

By source (the `datasets:` registry entry of the selected dataset):
- `synthetic`: the generated files (viral/data/synthetic.py);
- `amazon2014` / `amazon2018` / `amazon2023`: the category's files from the release's mirrors
  (`download.mirrors.<source>`, tried in order), through the resumable, checksummed downloader;
- `mmrec`, `custom`: the local folder's files, imported (hard-linked, or copied across file systems),
  so that DVC tracks their content and later stages read only `data/raw/<dataset>/`.
With `split: mmrec` the MMRec folder's split files are imported too, into `mmrec/`.

`manifest.json` records the source, the category and every file's origin, size and sha256.
Real downloads are kept complete in a download cache (`download.cache_dir/<source>/`, outside the
DVC output) and hard-linked into the raw folder: DVC empties an output before re-running its stage,
and a rerun must neither lose a multi-GB file nor a half-finished `.part` (which resumes with HTTP
Range). A cached file is served again only while it still matches its record (size, sha256) and looks
like its format (gzip magic), so deleting a damaged raw file and re-running the stage really downloads
it again.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from viral.data import amazon, amazon2018, amazon2023, mmrec
from viral.data.config import DownloadConfig, SyntheticConfig
from viral.data.datasets import AMAZON_SOURCES, Dataset
from viral.data.http import fetch_from_mirrors, sha256_file
from viral.io import atomic_dir, link_or_copy, write_json
from viral.params import Params
from viral.stage import StageError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MMREC_SPLIT_DIR = "mmrec"  # where `split: mmrec` keeps the adopted folder's files
GZIP_MAGIC = b"\x1f\x8b"


def expected_magic(name: str) -> bytes:
    """The first bytes file `name` must have (gzip's for `.gz`; none known for the `.b` features)."""
    return GZIP_MAGIC if name.endswith(".gz") else b""


def remote_files(dataset: Dataset, image_features: bool) -> list[str]:
    """The files of an Amazon dataset, relative to a mirror of its release."""
    settings = dataset.settings
    if dataset.source == "amazon2014":
        return amazon.remote_files(settings.category, image_features)
    if dataset.source == "amazon2018":
        return amazon2018.remote_files(settings.category)
    if dataset.source == "amazon2023":
        return amazon2023.remote_files(settings.category, settings.split)
    raise ValueError(f"{dataset.source} is not downloaded from mirrors")


def _file_entry(path: Path, source: str) -> dict[str, Any]:
    return {"url": source, "size": path.stat().st_size, "sha256": sha256_file(path).hexdigest()}


def _cached_entry(cached: Path) -> dict[str, Any] | None:
    """The recorded entry of a completed download in the cache, if the file is still intact: same size
    and sha256 as recorded, and the right first bytes (a page cached by an older, unchecked run is not)."""
    record = cached.with_name(cached.name + ".json")
    if not (cached.is_file() and record.is_file()):
        return None
    try:
        entry = json.loads(record.read_text())
    except ValueError:
        entry = {}
    magic = expected_magic(cached.name)
    with open(cached, "rb") as stream:
        head = stream.read(len(magic))
    intact = (entry.get("size") == cached.stat().st_size and head == magic
              and entry.get("sha256") == sha256_file(cached).hexdigest())
    if not intact:
        log.warning("%s: the cached copy is damaged or not the file; downloading it again", cached)
        cached.unlink()
        record.unlink()
        return None
    return entry


def fetch_release_files(release: str, relative: list[str], config: DownloadConfig, show_progress: bool = True
                        ) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Each file (a path relative to the release's mirrors) in the download cache, fetched unless an
    intact copy is there: local name -> (cached path, {url, size, sha256})."""
    mirrors = config.mirrors.get(release) or []
    if not mirrors:
        raise StageError(f"download.mirrors.{release}: no mirror listed")
    cache = Path(config.cache_dir) / release
    files = {}
    for path in relative:
        name = Path(path).name
        cached = cache / path
        entry = _cached_entry(cached)
        expected = config.sha256.get(name)
        if entry is not None and (not expected or entry["sha256"] == expected.lower()):
            log.info("%s: already downloaded (%d bytes)", name, entry["size"])
        else:
            urls = [f"{mirror.rstrip('/')}/{path}" for mirror in mirrors]
            got = fetch_from_mirrors(urls, cached, retries=config.retries, timeout_s=config.timeout_s,
                                     backoff_s=config.backoff_s, expected_sha256=expected,
                                     magic=expected_magic(name), show_progress=show_progress)
            entry = {"url": got.url, "size": got.size, "sha256": got.sha256}
            write_json(cached.with_name(cached.name + ".json"), entry)
        files[name] = (cached, entry)
    return files


def _listing(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    return ", ".join(names) or "nothing"


def local_files(folder: Path, names: list[str], key: str) -> dict[str, Path]:
    """`names` inside `folder` (name -> path); a missing one is one line listing what the folder has."""
    if not folder.is_dir():
        raise StageError(f"{folder}: no such folder ({key})")
    found = {}
    for name in names:
        path = folder / name
        if not path.is_file():
            raise StageError(f"{folder}: no file {name!r} ({key}); found: {_listing(folder)}")
        found[name] = path
    return found


def folder_files(folder: Path, key: str) -> dict[str, Path]:
    """Every file under `folder` (relative name -> path), hidden files and folders left out."""
    if not folder.is_dir():
        raise StageError(f"{folder}: no such folder ({key})")
    return {path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*"))
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)}


def mmrec_folder_files(folder: Path, with_features: bool, key: str) -> dict[str, Path]:
    """The files of an MMRec folder that we read: `<name>.inter`, the id maps, `<name>_url.csv` and,
    with `with_features`, `text_feat.npy` / `image_feat.npy` (each optional file only if present)."""
    if not folder.is_dir():
        raise StageError(f"{folder}: no such MMRec data folder ({key})")
    try:
        inter = mmrec.inter_path(folder)
    except mmrec.MMRecFormatError as err:
        raise StageError(f"{err} ({key}); found: {_listing(folder)}") from None
    names = [inter.name, mmrec.ITEM_MAP]
    optional = [mmrec.USER_MAP, f"{inter.stem}_url.csv"]
    if with_features:
        optional += [mmrec.TEXT_FEATURES, mmrec.IMAGE_FEATURES]
    files = local_files(folder, names, key)
    files.update({name: folder / name for name in optional if (folder / name).is_file()})
    return files


def _link_all(tmp: Path, files: dict[str, tuple[Path, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    entries = {}
    for name, (path, entry) in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(path, tmp / name)
        entries[name] = entry
    return entries


def _local(files: dict[str, Path], prefix: str = "") -> dict[str, tuple[Path, dict[str, Any]]]:
    return {f"{prefix}{name}": (path, _file_entry(path, f"file:{path.resolve()}")) for name, path in files.items()}


def gather_dataset(raw_dir: Path, dataset: Dataset, config: DownloadConfig, seed: int,
                   show_progress: bool = True) -> dict:
    """Write the dataset's raw folder (replacing it whole only once everything is there) and its manifest."""
    settings = dataset.settings
    manifest: dict[str, Any] = {"source": dataset.source}
    if dataset.category:
        manifest["category"] = dataset.category
    files: dict[str, tuple[Path, dict[str, Any]]] = {}
    key = f"datasets.{dataset.name}"
    # Local folders first: a wrong path fails before any download.
    if dataset.split == "mmrec":
        split_files = mmrec_folder_files(Path(settings.mmrec_dir), False, f"{key}.mmrec_dir")
        files.update(_local(split_files, f"{MMREC_SPLIT_DIR}/"))
    if dataset.source == "mmrec":
        files.update(_local(mmrec_folder_files(Path(settings.path), True, f"{key}.path")))
    elif dataset.source == "custom":
        folder = Path(settings.path)
        everything = folder_files(folder, f"{key}.path")
        local_files(folder, [settings.interactions], f"{key}.interactions")
        local_files(folder, [settings.items], f"{key}.items")
        files.update(_local(everything))
    elif dataset.source in AMAZON_SOURCES:
        files.update(fetch_release_files(dataset.source, remote_files(dataset, config.image_features), config,
                                         show_progress))
    with atomic_dir(raw_dir) as tmp:
        if dataset.source == "synthetic":
            manifest["seed"] = seed
            manifest["files"] = generate_files(tmp, settings.generator(), seed)
        manifest.setdefault("files", {}).update(_link_all(tmp, files))
        write_json(tmp / MANIFEST, manifest)
    return manifest


def generate_files(folder: Path, config: SyntheticConfig, seed: int) -> dict[str, dict[str, Any]]:
    """Generate the synthetic raw files into `folder`; their manifest entries."""
    from viral.data.synthetic import generate

    generate(folder, config, seed)
    return {path.relative_to(folder).as_posix(): _file_entry(path, f"generated:synthetic:seed={seed}")
            for path in sorted(folder.rglob("*")) if path.is_file()}


def read_manifest(raw_dir: str | Path) -> dict[str, Any]:
    """The manifest of a raw folder ({} when there is none, e.g. a hand-made test folder)."""
    path = Path(raw_dir) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def brings_features(raw_dir: str | Path) -> bool:
    """Whether the dataset comes with its own item features (an MMRec folder): then no image is
    fetched or captioned, and the encode stage takes the folder's features."""
    return read_manifest(raw_dir).get("source") == "mmrec"


def provided_features(raw_dir: str | Path) -> dict[str, Path]:
    """The item features a dataset brings itself (an MMRec folder: `{"text": ..., "image": ...}`, each
    only if present); empty for every other source, whose features the pipeline computes."""
    raw_dir = Path(raw_dir)
    if not brings_features(raw_dir):
        return {}
    found = {"text": raw_dir / mmrec.TEXT_FEATURES, "image": raw_dir / mmrec.IMAGE_FEATURES}
    return {modality: path for modality, path in found.items() if path.is_file()}


def run_download(params: Params) -> None:
    dataset = params.dataset_config()
    raw_dir = Path("data/raw") / dataset.name
    manifest = gather_dataset(raw_dir, dataset, params.download, params.data_seed)
    total = sum(entry["size"] for entry in manifest["files"].values())
    log.info("%s (%s): %d files, %.1f MB", raw_dir, dataset.source, len(manifest["files"]), total / 1e6)
