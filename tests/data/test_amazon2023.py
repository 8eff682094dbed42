"""Amazon Reviews 2023: reviews keyed by parent_asin with millisecond timestamps, the metadata recipe and
image choice, our splits against a plain re-implementation of the published benchmark rules, and the
published split files adopted as they are."""
import csv
import gzip
import json
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from viral.data import amazon2023
from viral.data.config import PrepareConfig
from viral.data.datasets import parse_datasets
from viral.data.prepare import prepare_dataset, prepare_from_raw
from viral.data.records import RawFormatError
from viral.data.reviews import read_review_interactions
from viral.stage import StageError


def _split(**entry):
    return parse_datasets({"x": {"source": "amazon2023", "category": "Toys_and_Games", **entry}})["x"].settings


def _files(tmp_path, rawfiles, seed=0):
    reviews = rawfiles.reviews_2023(seed)
    rawfiles.write_json_lines(tmp_path / "Toys_and_Games.jsonl.gz", reviews)
    asins = sorted({r["parent_asin"] for r in reviews})
    rawfiles.write_json_lines(tmp_path / "meta_Toys_and_Games.jsonl.gz", rawfiles.meta_2023(asins[1:]))
    return reviews, tmp_path / "Toys_and_Games.jsonl.gz", tmp_path / "meta_Toys_and_Games.jsonl.gz"


def reference_benchmark(reviews, k=5):
    """The published processing, written plainly: per user by time (stable), drop repeated items keeping
    the earliest; iterative k-core; then per user by time the last is test, the one before valid."""
    by_user = defaultdict(list)
    for row, r in enumerate(reviews):
        by_user[r["user_id"]].append((r["timestamp"], row, r["parent_asin"]))
    kept = []
    for user, rows in by_user.items():
        seen = set()
        for stamp, row, item in sorted(rows):
            if item not in seen:
                seen.add(item)
                kept.append((user, item, stamp, row))
    while True:
        users = pd.Series([u for u, *_ in kept]).value_counts()
        items = pd.Series([i for _, i, *_ in kept]).value_counts()
        survivors = [x for x in kept if users[x[0]] >= k and items[x[1]] >= k]
        if len(survivors) == len(kept):
            break
        kept = survivors
    labels = {}
    per_user = defaultdict(list)
    for user, item, stamp, row in kept:
        per_user[user].append((stamp, row, item))
    for user, rows in per_user.items():
        rows.sort()
        for position, (_, _, item) in enumerate(rows):
            labels[(user, item)] = 2 if position == len(rows) - 1 else 1 if position == len(rows) - 2 else 0
    return labels, kept


def _triples(prepared):
    users = prepared.users.set_index("userID")["reviewerID"]
    asins = prepared.items.set_index("itemID")["asin"]
    inter = prepared.interactions
    return {(users[u], asins[i]): int(s) for u, i, s in zip(inter["userID"], inter["itemID"], inter["split"])}


def test_reviews_keep_parent_asin_and_millisecond_times(tmp_path, rawfiles):
    reviews, path, _ = _files(tmp_path, rawfiles)
    raw = read_review_interactions(path, amazon2023.REVIEW_FIELDS)
    frame = raw.frame()
    assert frame["reviewerID"].tolist() == [r["user_id"] for r in reviews]
    assert frame["asin"].tolist() == [r["parent_asin"] for r in reviews]
    assert frame["unixReviewTime"].tolist() == [r["timestamp"] for r in reviews]
    assert frame["overall"].tolist() == [r["rating"] for r in reviews]


def test_last_out_equals_the_published_rules(tmp_path, rawfiles):
    reviews, path, meta = _files(tmp_path, rawfiles)
    prepared, stats = prepare_from_raw(path, meta, PrepareConfig(), 0, "amazon2023", _split(split="last_out"))
    expected, kept = reference_benchmark(reviews)
    assert _triples(prepared) == expected
    # ids by first appearance (file order) of the kept rows, as MMRec's pd.unique
    order = [item for *_, item in sorted((row, item) for _, item, _, row in kept)]
    assert prepared.items["asin"].tolist() == list(dict.fromkeys(order))
    timestamps = {(r["user_id"], r["parent_asin"]): r["timestamp"] for r in sorted(reviews, key=lambda r: -r["timestamp"])}
    users = prepared.users.set_index("userID")["reviewerID"]
    asins = prepared.items.set_index("itemID")["asin"]
    inter = prepared.interactions
    assert [timestamps[(users[u], asins[i])] for u, i in zip(inter["userID"], inter["itemID"])] == \
        inter["timestamp"].tolist()  # the earliest of a repeated pair is the one kept
    assert stats["duplicates_kept"] == "earliest" and stats["timestamp_unit"] == "ms"
    assert stats["duplicate_pairs_dropped"] > 0 and stats["removed_by_kcore"] > 0


def test_timestamp_split_uses_the_published_cut_points(tmp_path, rawfiles):
    reviews, path, meta = _files(tmp_path, rawfiles)
    valid_from, test_from = 1_630_000_000_000, 1_660_000_000_000
    prepared, _ = prepare_from_raw(path, meta, PrepareConfig(), 0, "amazon2023",
                                   _split(split="timestamp", valid_from=valid_from, test_from=test_from))
    inter = prepared.interactions
    expected = np.where(inter["timestamp"] >= test_from, 2, np.where(inter["timestamp"] >= valid_from, 1, 0))
    assert (inter["split"].to_numpy() == expected).all() and set(expected) == {0, 1, 2}
    assert (_split(split="timestamp").valid_from, _split(split="timestamp").test_from) == (1628643414042,
                                                                                              1658002729837)


def test_item_text_recipe_and_largest_main_image(tmp_path, rawfiles):
    reviews, path, meta = _files(tmp_path, rawfiles)
    prepared, stats = prepare_from_raw(path, meta, PrepareConfig(), 0, "amazon2023", _split())
    items = prepared.items.set_index("asin")
    with_meta = [a for a in items.index if items.loc[a, "title"]]
    assert stats["items_without_meta"] == len(items) - len(with_meta) <= 1
    lines = {m["parent_asin"]: m for m in rawfiles.meta_2023(sorted({r["parent_asin"] for r in reviews})[1:])}
    for asin in with_meta:
        row, line = items.loc[asin], lines[asin]
        assert row["title"] == f"Toy {asin}"
        assert row["description"] == f"Feature of {asin} Safe About {asin}."
        assert row["brand"] == (line["store"] or "Details Brand")
        assert [list(p) for p in row["categories"]] == [["Toys & Games", "Puzzles"]]
        assert row["imUrl"] == f"https://m/{asin}_h.jpg"
        assert (row["price"] == 9.99) if line["price"] else np.isnan(row["price"])


@pytest.mark.parametrize("images, expected", [
    ([{"thumb": "t", "large": "l", "variant": "MAIN", "hi_res": None}], "l"),
    ([{"thumb": "t", "large": None, "variant": "MAIN", "hi_res": None}], "t"),
    ([{"thumb": "t1", "large": "l1", "variant": "PT01", "hi_res": "h1"}], "h1"),
    ([], ""),
])
def test_image_choice(images, expected):
    assert amazon2023.item_image(images) == expected


def test_published_split_files_are_adopted_as_they_are(tmp_path, rawfiles):
    reviews, _, meta = _files(tmp_path, rawfiles)
    labels, kept = reference_benchmark(reviews)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / meta.name).write_bytes(meta.read_bytes())
    parts = {0: "train", 1: "valid", 2: "test"}
    rows = {part: [] for part in parts.values()}
    for user, item, stamp, row in sorted(kept, key=lambda x: (x[0], x[2])):
        rows[parts[labels[(user, item)]]].append([user, item, reviews[row]["rating"], stamp])
    for part, lines in rows.items():
        with gzip.open(raw / f"Toys_and_Games.{part}.csv.gz", "wt", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(["user_id", "parent_asin", "rating", "timestamp"])
            writer.writerows(lines)
    dataset = parse_datasets({"t": {"source": "amazon2023", "category": "Toys_and_Games",
                                    "split": "published_last_out"}})["t"]
    prepared, stats = prepare_dataset(raw, dataset, PrepareConfig(), seed=0)
    assert _triples(prepared) == labels
    first_rows = [line[1] for part in ("train", "valid", "test") for line in rows[part]]
    assert prepared.items["asin"].tolist() == list(dict.fromkeys(first_rows))
    assert stats["splits"] == {part: len(lines) for part, lines in rows.items()}
    assert prepared.items["title"].str.startswith("Toy ").sum() >= len(prepared.items) - 1
    (raw / "Toys_and_Games.valid.csv.gz").unlink()
    with pytest.raises(StageError, match=r"Toys_and_Games.valid.csv.gz: not found \(run the download stage first\)"):
        prepare_dataset(raw, dataset, PrepareConfig(), seed=0)


def test_published_file_with_a_bad_timestamp_names_row_and_field(tmp_path):
    path = tmp_path / "Toys_and_Games.train.csv.gz"
    with gzip.open(path, "wt") as stream:
        stream.write("user_id,parent_asin,rating,timestamp\nU1,P1,5.0,1600000000000\nU2,P1,4.0,yesterday\n")
    with pytest.raises(StageError, match=r"train.csv.gz: row 2: field 'timestamp': expected an integer time") as err:
        amazon2023.read_benchmark({"train": path, "valid": path, "test": path})
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bad, reason", [
    ('{"user_id": "U1", "parent_asin": "P1", "rating": 5.0}', "missing field 'timestamp'"),
    ('{"user_id": "U1", "parent_asin": "P1", "rating": "5", "timestamp": 1}', "field 'rating' has a str"),
    ('{"user_id": "U1", "rating": 5.0, "timestamp": 1}', "missing or empty field 'parent_asin'"),
    ('{"user_id": "U1", "parent_asin": "P1", "rating": 5.0, "timestamp": 1.5}', "field 'timestamp' has a float"),
])
def test_bad_review_line_names_file_line_and_field(tmp_path, rawfiles, bad, reason):
    good = rawfiles.reviews_2023(0, n=5)
    path = tmp_path / "r.jsonl.gz"
    with gzip.open(path, "wt") as stream:
        stream.write("\n".join([json.dumps(good[0]), json.dumps(good[1]), bad, json.dumps(good[2])]) + "\n")
    with pytest.raises(RawFormatError, match=rf"r.jsonl.gz:3: expected a JSON review object: .*{reason}"):
        read_review_interactions(path, amazon2023.REVIEW_FIELDS)
    skipped = read_review_interactions(path, amazon2023.REVIEW_FIELDS, bad_lines="skip")
    assert (len(skipped), skipped.bad_lines) == (3, 1)


@pytest.mark.parametrize("bad, reason", [
    ('{"title": "no key"}', "missing or empty field 'parent_asin'"),
    ('{"parent_asin": "P1", "features": "x", "images": ["not an object"]}', "field 'images' must be a list of objects"),
    ('{"parent_asin": "P1", "categories": [1, 2]}', "field 'categories' must be a list of str"),
    ('{"parent_asin": "P1", "title": ["a list"]}', "field 'title' has a list"),
])
def test_bad_meta_line_names_file_line_and_field(tmp_path, rawfiles, bad, reason):
    path = tmp_path / "m.jsonl.gz"
    good = [json.dumps(m) for m in rawfiles.meta_2023(["P0", "P2"])]
    with gzip.open(path, "wt") as stream:
        stream.write("\n".join([good[0], bad, good[1]]) + "\n")
    with pytest.raises(RawFormatError, match=rf"m.jsonl.gz:2: expected a JSON meta object: {reason}"):
        amazon2023.read_meta(path)
    assert amazon2023.read_meta(path, bad_lines="skip")["asin"].tolist() == ["P0", "P2"]


def test_truncated_review_gzip_is_one_line(tmp_path, rawfiles):
    _, path, meta = _files(tmp_path, rawfiles)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RawFormatError, match=r"Toys_and_Games.jsonl.gz: truncated or corrupt gzip after line \d+"):
        prepare_from_raw(path, meta, PrepareConfig(), 0, "amazon2023", _split())
