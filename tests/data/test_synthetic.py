"""The synthetic dataset: deterministic, in the real raw formats, with the planted structure, 5-core safe."""
import csv
import gzip
import json
import re
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from viral.config import ConfigError, build
from viral.data import amazon
from viral.data.config import SyntheticConfig
from viral.data.render import RGB
from viral.data.synthetic import DESCRIPTION_FILES, TRUTH_FILE, generate
from viral.data.synthetic_text import AGE_WORDS, IMAGE_ONLY_WORDS, OBJECT_NOUNS, PATTERN_PHRASES
from viral.data.synthetic_world import COLOURS, make_items, make_users, repair_item_degrees

SMALL = SyntheticConfig(n_users=120, n_items=60, interactions_per_user=6, image_size=48)
CAT = SMALL.category
REVIEW_KEYS = ["reviewerID", "asin", "reviewerName", "helpful", "reviewText", "overall", "summary",
               "unixReviewTime", "reviewTime"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The small dataset written twice with seed 7 and once with seed 8: (dir, report) each."""
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("other", 8)):
        out = tmp_path_factory.mktemp(name)
        runs[name] = (out, generate(out, SMALL, seed))
    return runs


@pytest.fixture(scope="module")
def data(generated):
    out, report = generated["a"]
    truth = json.loads((out / TRUTH_FILE).read_text())
    reviews = amazon.read_reviews(out / amazon.reviews_name(CAT))
    meta = amazon.read_meta(out / amazon.meta_name(CAT))
    return out, report, truth, reviews, meta


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(generated):
    first, second = _all_files(generated["a"][0]), _all_files(generated["b"][0])
    assert len(first) == 6 + SMALL.n_items
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], name


def test_different_seed_gives_different_files(generated):
    first, other = _all_files(generated["a"][0]), _all_files(generated["other"][0])
    top_level = [name for name in first if "/" not in name]
    assert len(top_level) == 6
    for name in top_level:
        assert first[name] != other[name], name
    assert {n for n in first if n.startswith("images/")} != {n for n in other if n.startswith("images/")}


def test_gzip_headers_carry_no_time_or_name(data):
    out = data[0]
    for name in (amazon.reviews_name(CAT), amazon.meta_name(CAT)):
        header = (out / name).read_bytes()[:10]
        assert header[:2] == b"\x1f\x8b"
        assert header[3] & 0x08 == 0  # FNAME flag
        assert header[4:8] == b"\x00\x00\x00\x00"  # MTIME


def test_reviews_follow_the_real_format(data):
    out, report, _, reviews, _ = data
    with gzip.open(out / amazon.reviews_name(CAT), "rt") as stream:
        records = [json.loads(line) for line in stream]
    assert len(records) == len(reviews) == report["interactions"]
    for record in records:
        assert list(record) == REVIEW_KEYS
        day = datetime.fromtimestamp(record["unixReviewTime"], tz=timezone.utc)
        assert record["reviewTime"] == f"{day.month:02d} {day.day}, {day.year}"
        assert record["unixReviewTime"] % 86400 == 0
        assert record["overall"] in (1.0, 2.0, 3.0, 4.0, 5.0)
        helpful, total = record["helpful"]
        assert 0 <= helpful <= total
        assert re.fullmatch(r"A[0-9A-Z]{13}", record["reviewerID"])
    assert 3.5 < reviews["overall"].mean() < 4.6  # the real 5-core files are mostly 4 and 5 stars


def test_meta_parses_and_points_at_real_images(data):
    out, _, truth, _, meta = data
    assert meta["asin"].tolist() == [item["asin"] for item in truth["items"]]
    assert meta["asin"].str.fullmatch(r"B0[0-9A-Z]{8}").all()
    for row in meta.itertuples():
        assert row.imUrl == f"images/{row.asin}.jpg"
        assert row.title and row.description
        assert row.categories[0][0] == CAT and len(row.categories[0]) == 3
        with Image.open(out / row.imUrl) as image:
            assert image.format == "JPEG" and image.size == (SMALL.image_size, SMALL.image_size)
            image.load()
    assert meta["price"].notna().any()


def test_description_files_parse(data):
    out, _, truth, _, _ = data
    asins = [item["asin"] for item in truth["items"]]
    for name in DESCRIPTION_FILES.values():
        with open(out / name, newline="", encoding="utf-8") as stream:
            rows = list(csv.reader(stream))
        assert rows[0] == ["asin", "description"]
        assert [row[0] for row in rows[1:]] == asins
        assert all(len(row) == 2 and len(row[1]) > 20 for row in rows[1:])


def test_image_features_file(data):
    out, _, truth, _, _ = data
    path = out / amazon.image_features_name(CAT)
    assert path.stat().st_size == SMALL.n_items * (10 + 4 * amazon.FEATURE_DIM)
    asins, features = amazon.read_image_features(path)
    assert asins == [item["asin"] for item in truth["items"]]
    assert features.shape == (SMALL.n_items, amazon.FEATURE_DIM) and features.dtype == np.float32
    assert np.isfinite(features).all() and (features >= 0).all() and (features > 0).mean() > 0.2


def test_original_features_are_weak_but_informative(data):
    out, _, truth, _, _ = data
    _, features = amazon.read_image_features(out / amazon.image_features_name(CAT))
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    neighbours = np.argsort(-similarity, axis=1)[:, :5]
    colours = np.array([item["colour"] for item in truth["items"]])
    agreement = (colours[neighbours] == colours[:, None]).mean()
    assert 1.5 / len(COLOURS) < agreement < 0.8


def _interactions(reviews, truth):
    item_of = {item["asin"]: item for item in truth["items"]}
    user_of = {user["reviewerID"]: user for user in truth["users"]}
    return [(user_of[r], item_of[a]) for r, a in zip(reviews["reviewerID"], reviews["asin"])]


@pytest.mark.parametrize("attribute, values", [("colour", 8), ("pattern", 4), ("age", 4), ("type", 8)])
def test_interactions_concentrate_on_preferred_attributes(data, attribute, values):
    _, report, truth, reviews, _ = data
    pairs = _interactions(reviews, truth)
    share = np.mean([user[attribute] == item[attribute] for user, item in pairs])
    chance = 1.0 / values
    assert share >= 2 * chance if attribute == "colour" else share >= 1.4 * chance
    assert report["structure"][attribute]["preferred_share"] == pytest.approx(share, abs=1e-4)


def test_colour_and_pattern_only_in_the_pictures(data):
    out, _, truth, reviews, meta = data
    with gzip.open(out / amazon.reviews_name(CAT), "rt") as stream:
        review_texts = [json.loads(line)["reviewText"] + " " + json.loads(line)["summary"] for line in stream]
    texts = [f"{r.title} {r.brand} {r.description} {r.categories}" for r in meta.itertuples()] + review_texts
    for text in texts:
        words = set(re.findall(r"[a-z]+", text.lower()))
        assert not words & IMAGE_ONLY_WORDS, text
    # the text-only attributes are there: every description names the age group and the material
    for row, item in zip(meta.itertuples(), truth["items"]):
        assert AGE_WORDS[item["age"]][0].lower() in row.description.lower()
        assert item["material"].lower() in row.description.lower()


def test_reference_descriptions(data):
    out, _, truth, _, _ = data
    described = {}
    for prompt, name in DESCRIPTION_FILES.items():
        with open(out / name, newline="", encoding="utf-8") as stream:
            described[prompt] = {row["asin"]: row["description"] for row in csv.DictReader(stream)}
    plain_right = Counter()
    for item in truth["items"]:
        guided = described["title"][item["asin"]]
        assert item["colour"] in guided and OBJECT_NOUNS[item["type"]] in guided
        assert PATTERN_PHRASES[item["pattern"]] in guided
        assert 2 <= guided.count(". ") + 1 <= 3
        plain = described["plain"][item["asin"]]
        plain_right["colour"] += item["colour"] in plain.split("The main object is")[1]
        plain_right["type"] += OBJECT_NOUNS[item["type"]] in plain
        plain_right["distracted"] += any(colour in plain for colour in item["clutter_colours"])
    n = len(truth["items"])
    # the un-guided description is unreliable: right about the product only sometimes, drawn to clutter
    assert 0.3 * n < plain_right["colour"] < 0.85 * n
    assert 0.4 * n < plain_right["type"] < 0.95 * n
    assert plain_right["distracted"] == n


def _palette_counts(image: Image.Image) -> np.ndarray:
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 1, 3)
    palette = np.array([RGB[c] for c in COLOURS], dtype=np.float64)[None]
    distance = np.linalg.norm(pixels - palette, axis=2)
    near = distance.min(axis=1) < 60
    return np.bincount(distance.argmin(axis=1)[near], minlength=len(COLOURS))


def test_pictures_show_the_planted_colour(data):
    out, _, truth, _, _ = data
    right = 0
    for item in truth["items"]:
        with Image.open(out / "images" / f"{item['asin']}.jpg") as image:
            right += COLOURS[int(_palette_counts(image).argmax())] == item["colour"]
    assert right >= 0.9 * len(truth["items"])


def _degrees(reviews):
    pairs = set(zip(reviews["reviewerID"], reviews["asin"]))
    assert len(pairs) == len(reviews), "a user reviewed an item twice"
    users, items = Counter(u for u, _ in pairs), Counter(i for _, i in pairs)
    return users, items


def test_every_user_and_item_survives_5_core(data):
    _, report, truth, reviews, _ = data
    users, items = _degrees(reviews)
    assert len(users) == SMALL.n_users and len(items) == SMALL.n_items
    assert min(users.values()) >= SMALL.interactions_per_user >= 5
    assert min(items.values()) >= 5
    assert report["min_user_degree"] == min(users.values())
    assert report["min_item_degree"] == min(items.values())


def test_repair_pass_lifts_every_item_to_five_users():
    config = SyntheticConfig(n_users=8, n_items=40, interactions_per_user=5)
    rng = np.random.default_rng(3)
    items, users = make_items(config, rng), make_users(config, rng)
    user = np.repeat(np.arange(8), 5)
    item = np.tile(np.arange(5), 8)  # every user bought items 0..4 only: 35 items have nobody
    user, item, added = repair_item_degrees(users, items, user, item, rng)
    assert added == 35 * 5
    by_item = defaultdict(set)
    for u, i in zip(user, item):
        by_item[i].add(u)
    assert sum(len(s) for s in by_item.values()) == len(user)  # no duplicate pairs
    assert all(len(by_item[i]) >= 5 for i in range(40))
    assert np.bincount(user, minlength=8).min() >= 5


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"interactions_per_user": 4}, "interactions_per_user: expected >= 5 (every user must survive 5-core)"),
        ({"n_users": 3}, "n_users: expected >= 5 (items need 5 distinct users for 5-core)"),
        ({"n_items": 10}, "synthetic: n_items: expected >= 2 * interactions_per_user = 24"),
        ({"image_size": 8}, "image_size: expected >= 32 and <= 1024 (pixels)"),
        ({"noise": 1.0}, "noise: expected >= 0 and < 1"),
        ({"category": "Baby/../x"}, "category: expected letters"),
    ],
)
def test_bad_config_is_rejected(changes, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build(SyntheticConfig, changes, "download.synthetic")


def test_bad_config_names_the_params_key():
    from viral.params import parse_params

    with pytest.raises(ConfigError, match=r"download\.synthetic\.interactions_per_user: expected >= 5"):
        parse_params({"download": {"synthetic": {"interactions_per_user": 3}}})
