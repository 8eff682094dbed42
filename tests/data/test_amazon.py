"""The Amazon 2014 raw-format readers on small hand-written files."""
import gzip
import json

import numpy as np
import pytest

from viral.data.amazon import (
    FEATURE_DIM,
    CATEGORIES,
    RawFormatError,
    image_features_name,
    meta_name,
    read_image_features,
    read_meta,
    read_reviews,
    reviews_name,
    write_image_features,
)

REVIEWS = [
    {"reviewerID": "A1", "asin": "B000000001", "reviewerName": "Ann", "helpful": [0, 0], "reviewText": "ok",
     "overall": 5.0, "summary": "good", "unixReviewTime": 1373932800, "reviewTime": "07 16, 2013"},
    {"reviewerID": "A2", "asin": "B000000002", "overall": 3, "unixReviewTime": 1373932801},
    {"reviewerID": "A3", "asin": "B000000001"},
]

META = [
    "{'asin': 'B000000001', 'title': \"Bob's \\\"best\\\" bib\", 'brand': 'Acme', 'description': 'Soft.',"
    " 'categories': [['Baby', 'Feeding'], ['Baby']], 'imUrl': 'http://x/1.jpg', 'price': 9.5,"
    " 'salesRank': {'Baby': 12}, 'related': {'also_bought': ['B000000002']}}",
    "{'asin': 'B000000002', 'categories': [['Baby']]}",
    "{'asin': 'B000000003', 'title': u'caf\\xe9', 'price': 3}",
]


def _gz(path, lines):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for line in lines:
            f.write(line + "\n")
    return path


def _assert_bad_line(reader, path, where, reason):
    """`reader` fails with one line naming `path`, the line (`where`) and `reason`; with skip it counts one."""
    with pytest.raises(RawFormatError) as err:
        reader(path)
    message = str(err.value)
    assert f"{path}{where}" in message and reason in message
    assert "\n" not in message
    skipped = reader(path, bad_lines="skip")
    assert skipped.attrs["bad_lines"] == 1
    return skipped


def test_file_names():
    assert len(CATEGORIES) == 24 and {"Baby", "Sports_and_Outdoors", "Clothing_Shoes_and_Jewelry"} <= set(CATEGORIES)
    assert reviews_name("Baby") == "reviews_Baby_5.json.gz"
    assert meta_name("Baby") == "meta_Baby.json.gz"
    assert image_features_name("Baby") == "image_features_Baby.b"


def test_read_reviews(tmp_path):
    path = _gz(tmp_path / "r.json.gz", [json.dumps(r) for r in REVIEWS] + [""])
    frame = read_reviews(path)
    assert list(frame.columns) == ["reviewerID", "asin", "overall", "unixReviewTime"]
    assert frame["reviewerID"].tolist() == ["A1", "A2", "A3"]
    assert frame["overall"].tolist()[:2] == [5.0, 3.0]
    assert np.isnan(frame["overall"].iloc[2])
    assert frame["unixReviewTime"].iloc[0] == 1373932800
    assert frame["unixReviewTime"].isna().tolist() == [False, False, True]
    assert frame.attrs["bad_lines"] == 0


@pytest.mark.parametrize(
    "bad, reason",
    [
        ('{"reviewerID": "A9", "asin": "B1"', "invalid JSON"),
        ('[1, 2]', "a JSON object, got list"),
        ('{"reviewerID": "A9"}', "missing or empty field 'asin'"),
        ('{"reviewerID": "A9", "asin": "B1", "overall": "five"}', "field 'overall' has a str"),
    ],
)
def test_malformed_review_line_names_file_and_line(tmp_path, bad, reason):
    lines = [json.dumps(REVIEWS[0]), bad, json.dumps(REVIEWS[1])]
    path = _gz(tmp_path / "r.json.gz", lines)
    skipped = _assert_bad_line(read_reviews, path, ":2: expected a JSON review object", reason)
    assert skipped["reviewerID"].tolist() == ["A1", "A2"]


def test_read_meta_fills_missing_fields(tmp_path):
    frame = read_meta(_gz(tmp_path / "m.json.gz", META))
    assert frame["asin"].tolist() == ["B000000001", "B000000002", "B000000003"]
    first = frame.iloc[0]
    assert first["title"] == 'Bob\'s "best" bib' and first["brand"] == "Acme"
    assert first["categories"] == [["Baby", "Feeding"], ["Baby"]]
    assert first["imUrl"] == "http://x/1.jpg" and first["price"] == 9.5
    second = frame.iloc[1]
    assert (second["title"], second["brand"], second["description"], second["imUrl"]) == ("", "", "", "")
    assert np.isnan(second["price"])
    assert frame.iloc[2]["categories"] == [] and frame.iloc[2]["title"] == "café"
    assert frame.iloc[2]["price"] == 3.0


def test_read_meta_never_evaluates_code(tmp_path):
    marker = tmp_path / "pwned"
    line = f"{{'asin': 'B000000009', 'title': __import__('pathlib').Path({str(marker)!r}).touch()}}"
    path = _gz(tmp_path / "m.json.gz", [META[1], line])
    with pytest.raises(RawFormatError, match=r"m.json.gz:2: expected a python-literal meta dict"):
        read_meta(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("{'asin': 'B1', 'title': 'unterminated}", "a python-literal dict"),
        ("['B1']", "a python-literal dict, got list"),
        ("{'title': 'no asin'}", "missing or empty field 'asin'"),
        ("{'asin': 'B1', 'categories': ['Baby']}", "field 'categories' must be a list of lists of str"),
        ("{'asin': 'B1', 'price': '9.99'}", "field 'price' has a str"),
    ],
)
def test_malformed_meta_line(tmp_path, bad, reason):
    path = _gz(tmp_path / "m.json.gz", [META[0], META[1], bad])
    skipped = _assert_bad_line(read_meta, path, ":3: expected a python-literal meta dict", reason)
    assert len(skipped) == 2


def test_read_meta_restricted_to_asins(tmp_path):
    path = _gz(tmp_path / "m.json.gz", META)
    assert read_meta(path, asins={"B000000002"})["asin"].tolist() == ["B000000002"]
    # a malformed line whose asin cannot be seen is still parsed, hence still reported
    bad = _gz(tmp_path / "bad.json.gz", [META[0], "{'title': 'broken"])
    with pytest.raises(RawFormatError, match=":2: expected"):
        read_meta(bad, asins={"B000000001"})


def test_truncated_gzip_is_one_line_error(tmp_path):
    whole = _gz(tmp_path / "whole.json.gz", [json.dumps(REVIEWS[0])] * 2000)
    data = whole.read_bytes()
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(RawFormatError, match=r"cut.json.gz: truncated or corrupt gzip after line \d+") as err:
        read_reviews(cut)
    assert "\n" not in str(err.value)
    not_gzip = tmp_path / "plain.json.gz"
    not_gzip.write_text(json.dumps(REVIEWS[0]))
    with pytest.raises(RawFormatError, match="truncated or corrupt gzip"):
        read_meta(not_gzip)


def test_missing_file(tmp_path):
    with pytest.raises(RawFormatError, match="no such file"):
        read_reviews(tmp_path / "absent.json.gz")


def test_image_features_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(3, FEATURE_DIM)).astype(np.float32)
    path = tmp_path / "f.b"
    write_image_features(path, ["B000000001", "B000000002", "B000000003"], features)
    raw = path.read_bytes()
    assert len(raw) == 3 * (10 + 4 * FEATURE_DIM)
    assert raw[:10] == b"B000000001"
    assert np.frombuffer(raw[10:14], "<f4")[0] == features[0, 0]
    asins, read = read_image_features(path)
    assert asins == ["B000000001", "B000000002", "B000000003"]
    np.testing.assert_array_equal(read, features)
    asins, read = read_image_features(path, asins={"B000000003"})
    assert asins == ["B000000003"]
    np.testing.assert_array_equal(read, features[2:])
    path.write_bytes(raw[:-5])
    with pytest.raises(RawFormatError, match="not a multiple of the 16394-byte record"):
        read_image_features(path)


def test_image_features_bad_asin_bytes(tmp_path):
    path = tmp_path / "f.b"
    path.write_bytes(b"\xff" * 10 + np.zeros(FEATURE_DIM, "<f4").tobytes())
    with pytest.raises(RawFormatError, match="record 0: expected a 10-byte ASCII asin"):
        read_image_features(path)
