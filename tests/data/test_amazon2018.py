"""Amazon Review Data 2018: 5-core reviews with the 2014 field names, strict-JSON metadata, the item text
recipe (feature bullets + description paragraphs) and the full-size image choice."""
import gzip
import json

import numpy as np
import pytest

from viral.data import amazon2018
from viral.data.config import PrepareConfig
from viral.data.datasets import parse_datasets
from viral.data.prepare import prepare_dataset
from viral.data.records import RawFormatError

META = {
    "category": ["Clothing, Shoes & Jewelry", "Women", "Dresses"], "tech1": "", "description": ["A dress.", "Cotton."],
    "fit": "", "title": "Summer Dress", "also_buy": ["B0000000X1"], "tech2": "", "brand": "Acme", "feature":
    ["Machine wash", "Imported"], "rank": "12 in Clothing", "also_view": [], "main_cat": "AMAZON FASHION",
    "similar_item": "", "date": "", "price": "$12.99", "asin": "B000000001",
    "imageURL": ["https://images-na.ssl-images-amazon.com/images/I/41abc._SS40_.jpg"],
    "imageURLHighRes": ["https://images-na.ssl-images-amazon.com/images/I/41abc.jpg"],
}


def _gz(path, rows):
    with gzip.open(path, "wt") as stream:
        stream.write("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_file_layout():
    assert amazon2018.remote_files("All_Beauty") == ["categoryFilesSmall/All_Beauty_5.json.gz",
                                                     "metaFiles2/meta_All_Beauty.json.gz"]
    assert len(amazon2018.CATEGORIES) == 29 and "Prime_Pantry" in amazon2018.CATEGORIES


def test_meta_recipe_image_and_price(tmp_path):
    thumbnail_only = {**META, "asin": "B000000002", "imageURLHighRes": [], "price": "$5.00 - $9.00",
                      "category": [], "main_cat": "<img src=x>", "feature": [], "description": []}
    frame = amazon2018.read_meta(_gz(tmp_path / "meta.json.gz", [META, thumbnail_only, {"asin": "B000000003"}]))
    first, second, bare = (frame.iloc[i] for i in range(3))
    assert (first["title"], first["brand"]) == ("Summer Dress", "Acme")
    assert first["description"] == "Machine wash Imported A dress. Cotton."
    assert first["categories"] == [["Clothing, Shoes & Jewelry", "Women", "Dresses"]]
    assert first["imUrl"] == "https://images-na.ssl-images-amazon.com/images/I/41abc.jpg" and first["price"] == 12.99
    assert second["imUrl"] == "https://images-na.ssl-images-amazon.com/images/I/41abc.jpg"  # size token removed
    assert np.isnan(second["price"]) and second["categories"] == [] and second["description"] == ""
    assert (bare["title"], bare["imUrl"], bare["categories"]) == ("", "", [])


@pytest.mark.parametrize("value, expected", [("$12.99", 12.99), ("$1,299.00", 1299.0), (7, 7.0), ("", None),
                                             ("$5.00 - $9.00", None), (".a-box-inner{}", None), (None, None)])
def test_price(value, expected):
    assert amazon2018.parse_price(value) == expected


@pytest.mark.parametrize("bad, reason", [
    ("{'asin': 'B1'}", "invalid JSON"),  # 2018 metadata is strict JSON, not python literals
    ('{"asin": "B1", "feature": {"a": 1}}', "field 'feature' must be a list of str"),
    ('{"title": "x"}', "missing or empty field 'asin'"),
])
def test_bad_meta_line(tmp_path, bad, reason):
    path = _gz(tmp_path / "meta.json.gz", [META, bad])
    with pytest.raises(RawFormatError, match=rf"meta.json.gz:2: expected a JSON meta object: {reason}") as err:
        amazon2018.read_meta(path)
    assert "\n" not in str(err.value)
    assert amazon2018.read_meta(path, bad_lines="skip").attrs["bad_lines"] == 1


def test_prepare_a_2018_category(tmp_path, rawfiles):
    reviews = rawfiles.random_reviews(4)
    for k, review in enumerate(reviews):  # 2018 extras
        review.update(verified=bool(k % 2), vote="2", style={"Size:": " M"}, image=["https://x/r.jpg"])
    _gz(tmp_path / "All_Beauty_5.json.gz", reviews)
    asins = sorted({r["asin"] for r in reviews})
    _gz(tmp_path / "meta_All_Beauty.json.gz", [{**META, "asin": a, "title": f"T {a}"} for a in asins])
    dataset = parse_datasets({"b": {"source": "amazon2018", "category": "All_Beauty"}})["b"]
    prepared, stats = prepare_dataset(tmp_path, dataset, PrepareConfig(), seed=1)
    assert stats["raw_reviews"] == len(reviews) and stats["items_without_meta"] == 0
    assert (prepared.items["title"] == "T " + prepared.items["asin"]).all()
    assert stats["duplicates_kept"] == "first" and stats["timestamp_unit"] == "s"
    dataset = parse_datasets({"b": {"source": "amazon2018", "category": "All_Beauty", "split": "last_out"}})["b"]
    prepared, _ = prepare_dataset(tmp_path, dataset, PrepareConfig(), seed=1)
    inter = prepared.interactions
    latest = inter.loc[inter.groupby("userID")["timestamp"].idxmax()]
    assert (latest["split"] == 2).all()
