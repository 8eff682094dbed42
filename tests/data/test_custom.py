"""Custom datasets: an interactions file and an items file in CSV, TSV (gzip), Parquet or JSON lines with
configurable column names, prepared like Amazon (dedupe, k-core, ids, split); every bad input stops
with one line naming the file, the row and the field, and leaves the previous output untouched."""
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from viral.data.config import PrepareConfig
from viral.data.datasets import parse_datasets
from viral.data.prepare import prepare_dataset, run_prepare
from viral.data.prepared import load_prepared
from viral.params import parse_params
from viral.stage import StageError, run_stage

ROOT = Path(__file__).resolve().parents[2]


def interactions(seed=0, n=900, n_users=120, n_items=40):
    rng = np.random.default_rng(seed)
    users = rng.zipf(1.4, n) % n_users
    items = rng.zipf(1.3, n) % n_items
    return pd.DataFrame({"user": [f"u{u}" for u in users], "item": [f"i{i}" for i in items],
                         "rating": (1 + (users + items) % 5).astype(float), "timestamp": 1_000_000 + np.arange(n)})


def items(n_items=40):
    return pd.DataFrame({"item": [f"i{i}" for i in range(n_items)], "title": [f"Item {i}" for i in range(n_items)],
                         "brand": ["Acme"] * n_items, "categories": ["Home|Kitchen"] * n_items,
                         "description": [f"About item {i}." for i in range(n_items)],
                         "image": [f"https://img/{i}.jpg" for i in range(n_items)]})


def write(frame: pd.DataFrame, path: Path) -> Path:
    name = path.name.removesuffix(".gz")
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    elif name.endswith(".jsonl"):
        text = "".join(json.dumps(row) + "\n" for row in frame.to_dict("records"))
        if path.name.endswith(".gz"):
            with gzip.open(path, "wt") as stream:
                stream.write(text)
        else:
            path.write_text(text)
    else:
        frame.to_csv(path, sep="\t" if name.endswith(".tsv") else ",", index=False,
                     compression="gzip" if path.name.endswith(".gz") else None)
    return path


def dataset(folder, **entry):
    return parse_datasets({"mine": {"source": "custom", "path": str(folder), **entry}})["mine"]


@pytest.mark.parametrize("inter_name, items_name", [
    ("interactions.csv", "items.csv"), ("interactions.tsv.gz", "items.tsv"), ("interactions.parquet", "items.parquet"),
    ("interactions.jsonl.gz", "items.jsonl"),
])
def test_every_format_gives_the_same_prepared_data(tmp_path, rawfiles, inter_name, items_name):
    frame = interactions()
    write(frame, tmp_path / inter_name)
    write(items(), tmp_path / items_name)
    prepared, stats = prepare_dataset(tmp_path, dataset(tmp_path, interactions=inter_name, items=items_name),
                                      PrepareConfig(), seed=3)
    core = rawfiles.kcore_pairs(list(zip(frame["user"], frame["item"])))
    users = prepared.users.set_index("userID")["reviewerID"]
    asins = prepared.items.set_index("itemID")["asin"]
    inter = prepared.interactions
    assert sorted(zip(users[inter["userID"]], asins[inter["itemID"]])) == sorted(core)
    assert prepared.items["asin"].tolist() == list(dict.fromkeys(i for _, i in core))
    item = prepared.items.iloc[0]
    assert item["title"] == f"Item {item['asin'][1:]}" and item["brand"] == "Acme"
    assert [list(p) for p in item["categories"]] == [["Home", "Kitchen"]]
    assert item["imUrl"] == f"https://img/{item['asin'][1:]}.jpg"
    assert stats["catalogue_items"] == 40 and stats["interactions"] == len(core)
    assert inter["timestamp"].notna().all() and inter["rating"].notna().all()


def test_column_names_lists_and_a_timestamp_split(tmp_path):
    frame = interactions().rename(columns={"user": "customer", "item": "sku", "timestamp": "ts"}).drop(columns="rating")
    write(frame, tmp_path / "events.jsonl")
    catalogue = items().rename(columns={"item": "sku", "title": "name"})
    catalogue["categories"] = [["Home", "Kitchen"]] * len(catalogue)  # a list: one path
    write(catalogue, tmp_path / "catalogue.parquet")
    entry = dict(interactions="events.jsonl", items="catalogue.parquet", split="timestamp", valid_from=1_000_600,
                 test_from=1_000_800, columns={"user": "customer", "item": "sku", "timestamp": "ts", "title": "name"})
    prepared, _ = prepare_dataset(tmp_path, dataset(tmp_path, **entry), PrepareConfig(), seed=0)
    inter = prepared.interactions
    expected = np.where(inter["timestamp"] >= 1_000_800, 2, np.where(inter["timestamp"] >= 1_000_600, 1, 0))
    assert (inter["split"].to_numpy() == expected).all() and inter["rating"].isna().all()
    assert [list(p) for p in prepared.items.iloc[0]["categories"]] == [["Home", "Kitchen"]]


def test_items_without_optional_columns_and_integer_ids(tmp_path):
    frame = interactions()
    frame["item"] = frame["item"].str[1:].astype(int)
    write(frame, tmp_path / "interactions.parquet")
    write(pd.DataFrame({"item": range(40), "title": [f"T{i}" for i in range(40)]}), tmp_path / "items.parquet")
    prepared, _ = prepare_dataset(tmp_path, dataset(tmp_path, interactions="interactions.parquet",
                                                    items="items.parquet"), PrepareConfig(), seed=0)
    assert (prepared.items["title"] == "T" + prepared.items["asin"]).all()
    assert (prepared.items["brand"] == "").all() and (prepared.items["imUrl"] == "").all()


def _fixture(tmp_path, inter_name="interactions.csv", items_name="items.csv"):
    write(interactions(), tmp_path / inter_name)
    write(items(), tmp_path / items_name)
    return tmp_path


BAD_INPUTS = [
    # (file to damage, how, expected message)
    ("interactions.csv", lambda p: p.write_text(""), r"interactions.csv: empty file \(expected a header row"),
    ("interactions.csv", lambda p: p.write_text("user,item\n"), r"interactions.csv: no rows"),
    ("interactions.csv", lambda p: p.write_text("customer,item\nu1,i1\n"),
     r"interactions.csv: missing column 'user' \(datasets.mine.columns.user\); found: customer, item"),
    ("interactions.csv", lambda p: p.write_text("user,item,rating\nu1,i1,5\nu2,i2,five\n"),
     r"interactions.csv: row 2: field 'rating': expected a number, got 'five'"),
    ("interactions.csv", lambda p: p.write_text("user,item,timestamp\nu1,i1,12\nu2,i2,2020-01-01\n"),
     r"interactions.csv: row 2: field 'timestamp': expected an integer time"),
    ("interactions.csv", lambda p: p.write_text("user,item\nu1,i1\n,i2\n"),
     r"interactions.csv: row 2: field 'user': missing or empty"),
    ("interactions.csv", lambda p: p.write_text("user,item\nu1,i1\nu2,i99\n"),
     r"interactions.csv: row 2: field 'item': item 'i99' is not in items.csv"),
    ("interactions.csv", lambda p: p.write_text("user,item\nu1,i1\nu2,i2,extra\n"),
     r"interactions.csv: row 2: expected 2 fields \(user, item\), got 3"),
    ("items.csv", lambda p: p.write_text("item,title\ni1,A\ni2,B\ni1,C\n"),
     r"items.csv: row 3: field 'item': item 'i1' appears twice \(first at row 1\)"),
    ("items.csv", lambda p: p.write_text("item,name\ni1,A\n"),
     r"items.csv: missing column 'title' \(datasets.mine.columns.title\); found: item, name"),
    ("items.csv", lambda p: p.write_text(""), r"items.csv: empty file"),
]


@pytest.mark.parametrize("name, damage, message", BAD_INPUTS)
def test_bad_input_is_one_line_naming_file_row_and_field(tmp_path, name, damage, message):
    folder = _fixture(tmp_path)
    damage(folder / name)
    with pytest.raises(StageError, match=message) as err:
        prepare_dataset(folder, dataset(folder), PrepareConfig(), seed=0)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name, content, message", [
    ("interactions.parquet", pd.DataFrame({"user": ["u1"], "item": ["i1"], "rating": ["five"]}),
     r"interactions.parquet: column 'rating' has type (large_)?string, expected numbers"),
    ("interactions.parquet", pd.DataFrame({"user": ["u1", None], "item": ["i1", "i2"]}),
     r"interactions.parquet: row 2: field 'user': missing"),
    ("interactions.jsonl", pd.DataFrame({"user": ["u1", "u2"], "item": ["i1", "i2"], "rating": [5, "five"]}),
     r"interactions.jsonl:2: expected a JSON review object: field 'rating' has a str"),
    ("interactions.jsonl", '{"user": "u1", "item": "i1"}\n{"user": "u2", "item": null}\n',
     r"interactions.jsonl:2: expected a JSON review object: missing or empty field 'item'"),
    ("interactions.jsonl", '{"user": "u1", "item": "i1"}\n{"user": "u2", "item": ["i2"]}\n',
     r"interactions.jsonl:2: expected a JSON review object: field 'item' has a list"),
    ("items.jsonl", pd.DataFrame({"item": ["i1", "i2"], "title": ["A", 7]}),
     r"items.jsonl:2: field 'title': expected text, got 7"),
    ("items.parquet", pd.DataFrame({"item": ["i1", "i2"], "title": ["A", "B"], "categories": [7, 8]}),
     r"items.parquet: row 1: field 'categories': expected text, a list of names or a list of lists"),
])
def test_wrong_types_in_typed_formats(tmp_path, name, content, message):
    kind = "interactions" if name.startswith("interactions") else "items"
    other = {"interactions": ("items.csv", items()), "items": ("interactions.csv", interactions())}[kind]
    write(other[1], tmp_path / other[0])
    if isinstance(content, str):
        (tmp_path / name).write_text(content)
    else:
        write(content, tmp_path / name)
    entry = {kind: name, ("items" if kind == "interactions" else "interactions"): other[0]}
    with pytest.raises(StageError, match=message) as err:
        prepare_dataset(tmp_path, dataset(tmp_path, **entry), PrepareConfig(), seed=0)
    assert "\n" not in str(err.value)


def test_truncated_gzip_and_unknown_format(tmp_path):
    folder = _fixture(tmp_path, "interactions.csv.gz")
    data = (folder / "interactions.csv.gz").read_bytes()
    (folder / "interactions.csv.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(StageError, match=r"interactions.csv.gz: truncated or corrupt gzip"):
        prepare_dataset(folder, dataset(folder, interactions="interactions.csv.gz"), PrepareConfig(), seed=0)
    (folder / "interactions.xlsx").write_text("x")
    with pytest.raises(StageError, match=r"interactions.xlsx: unknown table format; expected .csv, .tsv, .jsonl"):
        prepare_dataset(folder, dataset(folder, interactions="interactions.xlsx"), PrepareConfig(), seed=0)


def test_timed_split_needs_every_timestamp(tmp_path):
    folder = _fixture(tmp_path)
    frame = interactions()
    frame["timestamp"] = frame["timestamp"].astype("Int64")
    frame.loc[5, "timestamp"] = None
    frame.to_csv(folder / "interactions.csv", index=False)
    with pytest.raises(StageError, match=r"interactions.csv: row 6: field 'timestamp': missing"):
        prepare_dataset(folder, dataset(folder, split="last_out"), PrepareConfig(), seed=0)
    prepared, _ = prepare_dataset(folder, dataset(folder), PrepareConfig(), seed=0)  # random: fine without
    assert prepared.interactions["timestamp"].isna().sum() <= 1


def test_a_failed_prepare_keeps_the_previous_output(tmp_path, monkeypatch, capsys):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["datasets"]["mine"] = {"source": "custom", "path": "unused"}
    raw["dataset"] = "mine"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "raw" / "mine").mkdir(parents=True)
    folder = _fixture(tmp_path / "data" / "raw" / "mine")
    run_prepare(parse_params(raw))
    before = {p.name: p.read_bytes() for p in Path("data/prepared/mine").iterdir()}
    (folder / "items.csv").write_text("item,title\ni1,A\ni1,B\n")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit):
        run_stage("prepare", run_prepare, str(tmp_path / "params.yaml"))
    assert "appears twice" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in Path("data/prepared/mine").iterdir()} == before
    assert load_prepared("data/prepared/mine")[1]["title"].str.startswith("Item").all()
