"""prepare from raw files: k-core, MMRec ids, split, items; checked against independent references."""
import gzip

import numpy as np
import pandas as pd
import pytest

from viral.data.config import PrepareConfig
from viral.data.prepare import prepare_from_raw
from viral.data.prepared import load_prepared, load_users, write_prepared
from viral.data.split import split_sizes
from viral.stage import StageError


def _paths(raw_dir):
    return raw_dir / "reviews_Synthetic_5.json.gz", raw_dir / "meta_Synthetic.json.gz"


def test_matches_reference_kcore_ids_and_split(raw_dir, rawfiles):
    prepared, stats = prepare_from_raw(*_paths(raw_dir), PrepareConfig(), seed=5)
    reviews = rawfiles.random_reviews(0)
    core = rawfiles.kcore_pairs([(r["reviewerID"], r["asin"]) for r in reviews], 5)
    # ids in order of first appearance over the filtered rows, as MMRec's pd.unique
    user_ids = {u: n for n, u in enumerate(dict.fromkeys(u for u, _ in core))}
    item_ids = {i: n for n, i in enumerate(dict.fromkeys(i for _, i in core))}
    expected = sorted((user_ids[u], item_ids[i]) for u, i in core)
    inter = prepared.interactions
    assert sorted(zip(inter["userID"], inter["itemID"])) == expected
    assert prepared.users.set_index("userID")["reviewerID"].to_dict() == {v: k for k, v in user_ids.items()}
    assert prepared.items["asin"].tolist() == list(item_ids)
    for user, group in inter.groupby("userID"):
        counts = tuple(int((group["split"] == s).sum()) for s in (0, 1, 2))
        train, valid, test = (int(x[0]) for x in split_sizes([len(group)]))
        assert counts == (train, valid, test), user
    assert stats["duplicate_pairs_dropped"] == len(reviews) - len({(r["reviewerID"], r["asin"]) for r in reviews})
    assert stats["interactions"] == len(core) and stats["users"] == len(user_ids)
    assert stats["removed_by_kcore"] > 0


def test_ratings_timestamps_and_item_text_come_through(raw_dir, rawfiles):
    prepared, stats = prepare_from_raw(*_paths(raw_dir), PrepareConfig(), seed=5)
    reviews = pd.DataFrame(rawfiles.random_reviews(0)).drop_duplicates(["reviewerID", "asin"])
    users = prepared.users.set_index("userID")["reviewerID"]
    items = prepared.items.set_index("itemID")
    inter = prepared.interactions.assign(reviewerID=lambda f: users[f["userID"]].to_numpy(),
                                         asin=lambda f: items.loc[f["itemID"], "asin"].to_numpy())
    merged = inter.merge(reviews, on=["reviewerID", "asin"])
    assert len(merged) == len(inter)
    assert np.allclose(merged["rating"], merged["overall"])
    assert (merged["timestamp"] == merged["unixReviewTime"]).all()
    with_meta = prepared.items[prepared.items["title"] != ""]
    assert stats["items_without_meta"] == len(prepared.items) - len(with_meta) <= 1
    row = with_meta.iloc[0]
    assert row["title"] == f"Title {row['asin']}" and row["categories"] == [["Baby", "Toys"], ["Sale"]]
    assert row["price"] == 9.5 and row["imUrl"] == f"images/{row['asin']}.jpg"


def test_seeded_split(raw_dir):
    a, _ = prepare_from_raw(*_paths(raw_dir), PrepareConfig(), seed=1)
    b, _ = prepare_from_raw(*_paths(raw_dir), PrepareConfig(), seed=1)
    c, _ = prepare_from_raw(*_paths(raw_dir), PrepareConfig(), seed=2)
    assert a.interactions.equals(b.interactions)
    assert not a.interactions["split"].equals(c.interactions["split"])


def test_write_and_load_round_trip(raw_dir, tmp_path):
    prepared, stats = prepare_from_raw(*_paths(raw_dir), PrepareConfig(), seed=5)
    out = tmp_path / "prepared"
    write_prepared(out, prepared, stats)
    inter, items = load_prepared(out)
    assert str(inter["split"].dtype) == "int8" and str(inter["userID"].dtype) == "int64"
    assert inter[["userID", "itemID", "split"]].equals(prepared.interactions[["userID", "itemID", "split"]])
    assert items["itemID"].tolist() == list(range(len(items)))
    assert items.loc[0, "asin"] == prepared.items.loc[0, "asin"]
    assert load_users(out)["reviewerID"].tolist() == prepared.users["reviewerID"].tolist()
    assert sorted(p.name for p in out.iterdir()) == ["interactions.parquet", "items.parquet", "stats.json",
                                                      "users.parquet"]


def test_malformed_review_line_names_file_and_line(raw_dir):
    reviews, meta = _paths(raw_dir)
    lines = gzip.open(reviews, "rt").read().splitlines()
    lines[2] = '{"reviewerID": "U1", "asin": '
    with gzip.open(reviews, "wt") as stream:
        stream.write("\n".join(lines) + "\n")
    with pytest.raises(StageError, match=r"reviews_Synthetic_5\.json\.gz:3: expected a JSON review"):
        prepare_from_raw(reviews, meta, PrepareConfig(), seed=0)
    _, stats = prepare_from_raw(reviews, meta, PrepareConfig(bad_lines="skip"), seed=0)
    assert stats["bad_lines_skipped"]["reviews"] == 1


def test_malformed_meta_line_names_file_and_line(raw_dir):
    reviews, meta = _paths(raw_dir)
    lines = gzip.open(meta, "rt").read().splitlines()
    lines[0] = lines[0][:-1] + ", __import__('os')}"
    with gzip.open(meta, "wt") as stream:
        stream.write("\n".join(lines) + "\n")
    with pytest.raises(StageError, match=r"meta_Synthetic\.json\.gz:1: expected a python-literal"):
        prepare_from_raw(reviews, meta, PrepareConfig(), seed=0)
    _, stats = prepare_from_raw(reviews, meta, PrepareConfig(bad_lines="skip"), seed=0)
    assert stats["bad_lines_skipped"]["meta"] == 1


def test_truncated_gzip_is_one_line_error(raw_dir):
    reviews, meta = _paths(raw_dir)
    data = reviews.read_bytes()
    reviews.write_bytes(data[: len(data) // 2])
    with pytest.raises(StageError, match="truncated or corrupt gzip"):
        prepare_from_raw(reviews, meta, PrepareConfig(), seed=0)


def test_nothing_survives_kcore(tmp_path, rawfiles):
    reviews = rawfiles.write_reviews(tmp_path / "r.json.gz", rawfiles.random_reviews(0, n=30, n_users=30, n_items=30))
    with pytest.raises(StageError, match="no interaction survives the 5-core"):
        prepare_from_raw(reviews, tmp_path / "m.json.gz", PrepareConfig(), seed=0)
