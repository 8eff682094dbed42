"""Fixtures of the caption tests: a tiny Qwen2.5-VL built once, and a small prepared dataset on disk."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from viral.data.image_store import IMAGE_SCHEMA, shard_name
from viral.caption.config import CaptionConfig
from viral.config import build
from viral.params import Params

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[2]
N_ITEMS = 10
NO_IMAGE = {3, 7}  # items the images stage could not fetch
# Sizes differ so that batches mix visual-token counts (exercises left padding).
SIZES = [(56, 56), (84, 56), (112, 112), (64, 48), (56, 84), (70, 70), (96, 64), (56, 56), (120, 80), (60, 60)]


def png_bytes(size: tuple[int, int], seed: int) -> bytes:
    from PIL import Image

    image = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 31) % 256))
    for x in range(0, size[0], 7):  # a little structure so images differ beyond their colour
        image.putpixel((x, (x * seed) % size[1]), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_items(root: Path, titles: list[str]) -> None:
    folder = root / "data/prepared/synthetic"
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "itemID": pa.array(range(len(titles)), pa.int64()),
            "asin": [f"A{i:04d}" for i in range(len(titles))],
            "title": titles,
        }
    )
    pq.write_table(table, folder / "items.parquet")


def write_images(root: Path, images: dict[int, bytes], shard_size: int = 4) -> None:
    """Image shards in the images stage's format (docs/artifacts.md), several shards."""
    folder = root / "data/images/synthetic"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("shard-*.parquet"):
        old.unlink()
    ids = sorted(images)
    for index, start in enumerate(range(0, len(ids), shard_size)):
        chunk = ids[start : start + shard_size]
        rows = []
        for item_id in chunk:
            from PIL import Image

            data = images[item_id]
            try:
                width, height = Image.open(io.BytesIO(data)).size
            except OSError:  # a deliberately broken image
                width, height = 0, 0
            rows.append(
                dict(itemID=item_id, asin=f"A{item_id:04d}", image=data, sha256=hashlib.sha256(data).hexdigest(),
                     width=width, height=height)
            )  # fmt: skip
        pq.write_table(pa.Table.from_pylist(rows, schema=IMAGE_SCHEMA), folder / shard_name(index))


def default_titles() -> list[str]:
    return [f"Soft baby blanket number {i}" for i in range(N_ITEMS)]


def default_images() -> dict[int, bytes]:
    return {i: png_bytes(SIZES[i], i + 1) for i in range(N_ITEMS) if i not in NO_IMAGE}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    import torch

    from viral.caption.tiny import build_tiny_qwen

    # One thread: on a shared 2-core machine torch's two OpenMP threads contend and a tiny forward pass
    # gets ~20x slower; the model is far too small to gain from a second thread.
    torch.set_num_threads(1)
    return build_tiny_qwen(tmp_path_factory.mktemp("tiny-qwen"))


@pytest.fixture
def dataset(tmp_path, monkeypatch) -> Path:
    """A working directory with prepared items and image shards for dataset `synthetic`."""
    monkeypatch.chdir(tmp_path)
    write_items(tmp_path, default_titles())
    write_images(tmp_path, default_images())
    return tmp_path


def shipped_caption_section() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())["caption"]


def make_params(**caption):
    """Default params (dataset synthetic) with the shipped `caption` section, keys overridden.

    Only the caption section is read from params.yaml, so other stages' edits cannot break these tests.
    """
    section = {**shipped_caption_section(), "prompt_file": str(ROOT / "viral/caption/prompts.yaml"), **caption}
    return dataclasses.replace(Params(dataset="synthetic"), caption=build(CaptionConfig, section, "caption"))


@pytest.fixture
def tiny_params(tiny_model):
    """Params for the transformers backend on the tiny model; small enough for a CPU test."""

    def build(**caption):
        settings = dict(backend="transformers", model=str(tiny_model), device="cpu", max_new_tokens=6,
                        batch_size=4, shard_items=3, max_pixels=16 * 28 * 28)  # fmt: skip
        return make_params(**{**settings, **caption})

    return build


@pytest.fixture
def fx():
    """The helpers and constants above (tests cannot import conftest under --import-mode=importlib)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        N_ITEMS=N_ITEMS, NO_IMAGE=NO_IMAGE, ROOT=ROOT, default_images=default_images, default_titles=default_titles,
        png_bytes=png_bytes, write_images=write_images, write_items=write_items, make_params=make_params,
    )  # fmt: skip
