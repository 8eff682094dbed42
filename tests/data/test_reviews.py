"""Review files into compact interactions: Arrow's fast reader and the exact line reader agree, codes
follow first appearance, and every case the fast reader cannot take falls back to the exact one."""
import gzip
import json

import numpy as np
import pytest

import viral.data.reviews as reviews_module
from viral.data import amazon, amazon2023
from viral.data.interactions import concat_interactions, key_strings, unique_pairs
from viral.data.reviews import read_review_interactions


def _write(path, lines):
    with gzip.open(path, "wt") as stream:
        stream.write("\n".join(lines) + "\n")
    return path


def _same(a, b):
    for name in ("user", "item", "rating", "timestamp", "timestamp_known"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.user_keys.equals(b.user_keys) and a.item_keys.equals(b.item_keys)


def test_fast_and_exact_readers_agree(tmp_path, rawfiles):
    rows = rawfiles.reviews_2023(1, n=500)
    path = rawfiles.write_json_lines(tmp_path / "r.jsonl.gz", rows)
    fast = reviews_module._fast(path, amazon2023.REVIEW_FIELDS)
    exact = reviews_module._exact(path, amazon2023.REVIEW_FIELDS, "error")
    _same(fast, exact)
    assert fast.user_keys.to_pylist() == list(dict.fromkeys(r["user_id"] for r in rows))  # first appearance
    assert key_strings(fast.user_keys, fast.user).tolist() == [r["user_id"] for r in rows]


def test_missing_optional_fields_and_blank_lines(tmp_path):
    lines = ['{"reviewerID": "A", "asin": "B1", "overall": 4, "unixReviewTime": 7}', "",
             '{"reviewerID": "C", "asin": "B2"}', '{"reviewerID": "A", "asin": "B2", "overall": 2.5}']
    path = _write(tmp_path / "r.json.gz", lines)
    raw = read_review_interactions(path, amazon.REVIEW_FIELDS)
    _same(raw, reviews_module._exact(path, amazon.REVIEW_FIELDS, "error"))
    assert raw.timestamp_known.tolist() == [True, False, False] and raw.timestamp[0] == 7
    assert np.isnan(raw.rating[1]) and raw.rating[2] == 2.5
    assert raw.item_keys.to_pylist() == ["B1", "B2"] and raw.item.tolist() == [0, 1, 1]


@pytest.mark.parametrize("line", [
    '{"reviewerID": "A", "asin": "B", "overall": NaN}',  # Python's json takes NaN, Arrow does not
    '{"reviewerID": "A", "asin": "B", "overall": 5, "reviewText": "' + "x" * 5000 + '"}',  # longer than a block
])
def test_lines_arrow_cannot_take_go_through_the_exact_reader(tmp_path, monkeypatch, line):
    monkeypatch.setattr(reviews_module, "BLOCK_BYTES", 4096)
    path = _write(tmp_path / "r.json.gz", ['{"reviewerID": "Z", "asin": "Y", "overall": 1}', line])
    raw = read_review_interactions(path, amazon.REVIEW_FIELDS)
    assert key_strings(raw.user_keys, raw.user).tolist() == ["Z", "A"] and raw.bad_lines == 0


def test_unique_pairs_first_and_earliest(tmp_path):
    lines = [json.dumps({"user_id": u, "parent_asin": i, "rating": 1.0, "timestamp": t})
             for u, i, t in [("u", "a", 5), ("v", "a", 1), ("u", "a", 3), ("u", "b", 2), ("u", "a", 3)]]
    raw = read_review_interactions(_write(tmp_path / "r.jsonl.gz", lines), amazon2023.REVIEW_FIELDS)
    assert unique_pairs(raw, "first").tolist() == [0, 1, 3]
    assert unique_pairs(raw, "earliest").tolist() == [1, 2, 3]  # the tie at 3 keeps the earlier line


def test_concat_shares_the_key_tables(tmp_path):
    a = read_review_interactions(_write(tmp_path / "a.jsonl.gz", [
        '{"user_id": "u1", "parent_asin": "x", "timestamp": 1}', '{"user_id": "u2", "parent_asin": "y", "timestamp": 2}']),
        amazon2023.REVIEW_FIELDS)
    b = read_review_interactions(_write(tmp_path / "b.jsonl.gz", [
        '{"user_id": "u3", "parent_asin": "y", "timestamp": 3}', '{"user_id": "u1", "parent_asin": "z", "timestamp": 4}']),
        amazon2023.REVIEW_FIELDS)
    both = concat_interactions([a, b])
    assert both.user_keys.to_pylist() == ["u1", "u2", "u3"] and both.item_keys.to_pylist() == ["x", "y", "z"]
    assert key_strings(both.user_keys, both.user).tolist() == ["u1", "u2", "u3", "u1"]
    assert key_strings(both.item_keys, both.item).tolist() == ["x", "y", "y", "z"]
    assert both.timestamp.tolist() == [1, 2, 3, 4]
