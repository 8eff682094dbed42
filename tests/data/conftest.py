"""Fixtures of the data tests: raw Amazon-format files written on the fly, a local HTTP server."""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest


def write_reviews(path: Path, rows: list[dict]) -> Path:
    with gzip.open(path, "wt") as stream:
        for row in rows:
            stream.write(json.dumps(row) + "\n")
    return path


def write_meta(path: Path, rows: list[dict]) -> Path:
    with gzip.open(path, "wt") as stream:
        for row in rows:
            stream.write(repr(row) + "\n")  # python literals, as the real meta files
    return path


def random_reviews(seed: int, n: int = 4000, n_users: int = 600, n_items: int = 200) -> list[dict]:
    """Skewed random reviews (so that k-core removes a good share), with some duplicate pairs."""
    rng = np.random.default_rng(seed)
    users = rng.zipf(1.5, n) % n_users
    items = rng.zipf(1.3, n) % n_items
    return [
        {"reviewerID": f"U{u:05d}", "asin": f"B{i:09d}", "reviewerName": "x", "helpful": [0, 0],
         "reviewText": "fine", "overall": float(1 + (u + i) % 5), "summary": "ok",
         "unixReviewTime": 1300000000 + k, "reviewTime": "01 1, 2011"}
        for k, (u, i) in enumerate(zip(users.tolist(), items.tolist()))
    ]


def meta_for(reviews: list[dict], drop: int = 1) -> list[dict]:
    """A meta line per reviewed asin except the first `drop` ones (missing meta must be tolerated)."""
    asins = sorted({r["asin"] for r in reviews})[drop:]
    return [
        {"asin": a, "title": f"Title {a}", "brand": "Acme", "description": f"About {a}",
         "categories": [["Baby", "Toys"], ["Sale"]], "imUrl": f"images/{a}.jpg", "price": 9.5}
        for a in asins
    ]


@pytest.fixture
def rawfiles():
    """The raw-file writers above (tests cannot import conftest under --import-mode=importlib)."""
    return SimpleNamespace(write_reviews=write_reviews, write_meta=write_meta, random_reviews=random_reviews,
                           meta_for=meta_for)


@pytest.fixture
def raw_dir(tmp_path):
    """A raw folder in the layout of the download stage for category `Synthetic`."""
    folder = tmp_path / "raw"
    folder.mkdir()
    reviews = random_reviews(0)
    write_reviews(folder / "reviews_Synthetic_5.json.gz", reviews)
    write_meta(folder / "meta_Synthetic.json.gz", meta_for(reviews))
    return folder
