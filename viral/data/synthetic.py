"""The `synthetic` dataset: a deterministic, seeded catalogue written in the exact Amazon 2014 raw formats,
with a planted signal that only the pictures show (see `synthetic_world` for the tastes).

`generate(out_dir, config, seed)` writes into `out_dir`:
  reviews_<Cat>_5.json.gz, meta_<Cat>.json.gz    the raw formats the real download yields
  images/<asin>.jpg                              rendered product pictures (meta imUrl points here)
  descriptions_title.csv, descriptions_plain.csv reference descriptions (title-guided / un-guided VLM)
  image_features_<Cat>.b                         weak "original" CNN-like features of the pictures
  truth.json                                     planted attributes and tastes, for tests and reports
Every file is byte-identical for the same seed and config.
"""
from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from viral.data import amazon
from viral.data.config import SyntheticConfig
from viral.data.render import Scene, jpeg_bytes, plan_scene, render
from viral.data.synthetic_text import (
    categories,
    description,
    plain_description,
    review,
    reviewer_name,
    title,
    title_guided_description,
)
from viral.data.synthetic_world import (
    ATTRIBUTE_VALUES,
    PREFERENCE_WEIGHTS,
    Interactions,
    Items,
    Users,
    draw_interactions,
    make_items,
    make_users,
    rate_and_date,
    repair_item_degrees,
)
from viral.io import atomic_path, write_json

log = logging.getLogger(__name__)

IMAGES_DIR = "images"
TRUTH_FILE = "truth.json"
DESCRIPTION_FILES = {"title": "descriptions_title.csv", "plain": "descriptions_plain.csv"}
# The "original" features: a fixed random projection (the same for every seed, like one pretrained CNN)
# of 16x16 downsampled pixels, background included, plus per-item noise, through a ReLU.
FEATURE_PIXELS = 16
FEATURE_PROJECTION_SEED = 20140723
FEATURE_NOISE = 0.15
STREAMS = ("world", "text", "scenes", "features", "descriptions", "reviews")


def _streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators per part, so changing one part leaves the others' draws unchanged."""
    children = np.random.SeedSequence(seed % 2**64).spawn(len(STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(STREAMS, children)}


def _write_gzip_lines(path: Path, lines) -> None:
    """A gzip of text lines without timestamp or file name in its header: same content, same bytes."""
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as stream:
            for line in lines:
                stream.write(line.encode("utf-8") + b"\n")


def _write_csv(path: Path, header: list[str], rows) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _meta_lines(items: Items, texts: list[dict], root: str):
    """python-literal lines in the key order of the real metadata; absent fields are left out."""
    for index, asin in enumerate(items.asin):
        record = {"asin": asin, "title": texts[index]["title"]}
        if items.price[index] is not None:
            record["price"] = items.price[index]
        record["imUrl"] = f"{IMAGES_DIR}/{asin}.jpg"
        if items.brand[index]:
            record["brand"] = items.brand[index]
        record["categories"] = categories(items.value("type", index), root)
        record["description"] = texts[index]["description"]
        yield repr(record)


def _review_date(timestamp: int) -> str:
    day = datetime.fromtimestamp(int(timestamp), tz=timezone.utc)
    return f"{day.month:02d} {day.day}, {day.year}"  # the real files' "MM D, YYYY"


def _review_lines(users: Users, items: Items, inter: Interactions, rng: np.random.Generator):
    """JSON lines grouped by product, like the real 5-core files."""
    names = [reviewer_name(rng) for _ in range(len(users))]
    order = np.lexsort((inter.timestamp, np.array(items.asin)[inter.item]))
    for row in order:
        user, item = int(inter.user[row]), int(inter.item[row])
        rating = int(inter.rating[row])
        text, summary = review(items.value("type", item), items.value("age", item), items.material[item], rating, rng)
        total = int(rng.poisson(1.0))
        yield json.dumps({
            "reviewerID": users.reviewer_id[user],
            "asin": items.asin[item],
            "reviewerName": names[user],
            "helpful": [int(rng.binomial(total, 0.7)), total],
            "reviewText": text,
            "overall": float(rating),
            "summary": summary,
            "unixReviewTime": int(inter.timestamp[row]),
            "reviewTime": _review_date(inter.timestamp[row]),
        })


def _feature_projection() -> np.ndarray:
    rng = np.random.default_rng(FEATURE_PROJECTION_SEED)
    inputs = FEATURE_PIXELS * FEATURE_PIXELS * 3
    return (rng.standard_normal((inputs, amazon.FEATURE_DIM)) / np.sqrt(inputs)).astype(np.float32)


def _render_images(
    out_dir: Path, items: Items, scenes: list[Scene], size: int, rng: np.random.Generator
) -> np.ndarray:
    """Write every picture into a fresh images folder (swapped in at the end, so a stale or partial
    folder never survives) and return the items' "original" 4096-d features."""
    final = out_dir / IMAGES_DIR
    staging = out_dir / f".{IMAGES_DIR}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    pixels = np.empty((len(items), FEATURE_PIXELS * FEATURE_PIXELS * 3), dtype=np.float32)
    for index in tqdm(range(len(items)), desc="render images", unit="img", mininterval=1.0):
        picture = render(items.value("type", index), items.value("colour", index), items.value("pattern", index),
                         scenes[index], size)
        (staging / f"{items.asin[index]}.jpg").write_bytes(jpeg_bytes(picture))
        small = picture.resize((FEATURE_PIXELS, FEATURE_PIXELS), Image.Resampling.BOX)
        pixels[index] = np.asarray(small, dtype=np.float32).reshape(-1) / 255.0 - 0.5
    noise = rng.standard_normal((len(items), amazon.FEATURE_DIM), dtype=np.float32)
    features = np.maximum(pixels @ _feature_projection() + FEATURE_NOISE * noise, 0.0)
    retired = out_dir / f".{IMAGES_DIR}.old"
    shutil.rmtree(retired, ignore_errors=True)
    if final.exists():
        os.replace(final, retired)
    os.replace(staging, final)
    shutil.rmtree(retired, ignore_errors=True)
    return features


def _structure_report(users: Users, items: Items, inter: Interactions) -> dict:
    """Share of interactions whose item has the user's preferred value, against the uniform chance share."""
    report = {}
    for name in PREFERENCE_WEIGHTS:
        hits = users.prefs[name][inter.user] == items.attrs[name][inter.item]
        report[name] = {"preferred_share": round(float(hits.mean()), 4),
                        "chance_share": round(1.0 / len(ATTRIBUTE_VALUES[name]), 4)}
    return report


def _truth(config: SyntheticConfig, seed: int, users: Users, items: Items, texts: list[dict], scenes: list[Scene],
           structure: dict) -> dict:
    return {
        "seed": seed,
        "config": {key: getattr(config, key) for key in config.__dataclass_fields__},
        "values": {name: list(values) for name, values in ATTRIBUTE_VALUES.items()},
        "preference_weights": PREFERENCE_WEIGHTS,
        "structure": structure,
        "items": [
            {
                "asin": asin,
                **{name: items.value(name, index) for name in ATTRIBUTE_VALUES},
                "material": items.material[index],
                "brand": items.brand[index],
                "log_popularity": round(float(items.log_popularity[index]), 4),
                "clutter_colours": scenes[index].clutter_colours,
                "prop_types": scenes[index].prop_types,
            }
            for index, asin in enumerate(items.asin)
        ],
        "users": [
            {"reviewerID": rid, **{name: ATTRIBUTE_VALUES[name][users.prefs[name][index]] for name in PREFERENCE_WEIGHTS}}
            for index, rid in enumerate(users.reviewer_id)
        ],
    }


def generate(out_dir: str | Path, config: SyntheticConfig, seed: int) -> dict:
    """Write the synthetic dataset into `out_dir` (see the module doc); returns a small report."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = _streams(seed)

    items = make_items(config, rng["world"])
    users = make_users(config, rng["world"])
    user, item = draw_interactions(config, users, items, rng["world"])
    user, item, repaired = repair_item_degrees(users, items, user, item, rng["world"])
    inter = rate_and_date(users, items, user, item, rng["world"])

    texts = []
    for index in range(len(items)):
        kind, age = items.value("type", index), items.value("age", index)
        args = (kind, age, items.material[index], items.brand[index])
        texts.append({"title": title(*args, rng["text"]), "description": description(*args, rng["text"])})
    scenes = [plan_scene(items.value("colour", index), items.value("type", index), rng["scenes"])
              for index in range(len(items))]

    cat = config.category
    features = _render_images(out_dir, items, scenes, config.image_size, rng["features"])
    amazon.write_image_features(out_dir / amazon.image_features_name(cat), items.asin, features)
    _write_gzip_lines(out_dir / amazon.meta_name(cat), _meta_lines(items, texts, cat))
    _write_gzip_lines(out_dir / amazon.reviews_name(cat), _review_lines(users, items, inter, rng["reviews"]))
    described = {"title": [], "plain": []}
    for index, asin in enumerate(items.asin):
        look = (items.value("type", index), items.value("colour", index), items.value("pattern", index))
        described["title"].append((asin, title_guided_description(*look, rng["descriptions"])))
        described["plain"].append((asin, plain_description(*look, scenes[index], rng["descriptions"])))
    for prompt, name in DESCRIPTION_FILES.items():
        _write_csv(out_dir / name, ["asin", "description"], described[prompt])
    structure = _structure_report(users, items, inter)
    write_json(out_dir / TRUTH_FILE, _truth(config, seed, users, items, texts, scenes, structure))

    seconds = time.perf_counter() - start
    files = sorted(
        [amazon.reviews_name(cat), amazon.meta_name(cat), amazon.image_features_name(cat), TRUTH_FILE,
         *DESCRIPTION_FILES.values()]
    )
    report = {
        "users": len(users),
        "items": len(items),
        "interactions": int(len(inter.user)),
        "repaired_interactions": repaired,
        "min_user_degree": int(np.bincount(inter.user, minlength=len(users)).min()),
        "min_item_degree": int(np.bincount(inter.item, minlength=len(items)).min()),
        "images": len(items),
        "structure": structure,
        "files": {name: (out_dir / name).stat().st_size for name in files},
        "seconds": round(seconds, 2),
    }
    log.info(
        "synthetic: wrote %d users, %d items, %d reviews (%d added so every item has 5), %d images to %s in %.1f s",
        report["users"], report["items"], report["interactions"], repaired, len(items), out_dir, seconds,
    )
    for name, size in report["files"].items():
        log.info("synthetic: wrote %s (%d bytes)", out_dir / name, size)
    for name, info in structure.items():
        log.info("synthetic: %s preferred share %.3f vs chance %.3f", name, info["preferred_share"], info["chance_share"])
    return report
