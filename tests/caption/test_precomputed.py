"""precomputed backend: every accepted format reads the same; malformed files fail with one clear line."""
from __future__ import annotations

import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from viral.caption.precomputed import PrecomputedFormatError, check_coverage, read_descriptions
from viral.stage import StageError

EXPECTED = {"B001": "A red, soft blanket.", "B002": 'Says "hi"\non two lines.'}


def test_authors_csv_with_quotes_commas_and_newlines(tmp_path):
    path = tmp_path / "amazon_baby_model_qwen_type_title_descriptions.csv"
    path.write_text('asin,description\nB001,"A red, soft blanket."\nB002,"Says ""hi""\non two lines."\nB003,\n')
    result = read_descriptions(path)
    assert result.key == "asin" and result.text == EXPECTED  # blank B003 counts as missing


def test_json_mapping_records_jsonl_and_parquet_agree(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(EXPECTED))
    (tmp_path / "b.json").write_text(json.dumps([{"asin": k, "description": v} for k, v in EXPECTED.items()]))
    records = [{"asin": k, "description": v} for k, v in EXPECTED.items()]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    pq.write_table(pa.table({"asin": list(EXPECTED), "description": list(EXPECTED.values())}), tmp_path / "d.parquet")
    for name in ("a.json", "b.json", "c.jsonl", "d.parquet"):
        assert read_descriptions(tmp_path / name).text == EXPECTED, name


def test_keyed_by_item_id(tmp_path):
    pq.write_table(pa.table({"itemID": [0, 2], "description": ["x", "y"]}), tmp_path / "d.parquet")
    assert read_descriptions(tmp_path / "d.parquet").text == {0: "x", 2: "y"}
    (tmp_path / "d.csv").write_text("itemID,description,extra\n5,five,\n")
    result = read_descriptions(tmp_path / "d.csv")
    assert (result.key, result.text) == ("itemID", {5: "five"})


def test_repeated_identical_rows_are_fine(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("asin,description\nB001,same\nB001,same\n")
    assert read_descriptions(path).text == {"B001": "same"}


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("d.csv", "", "empty file"),
        ("d.csv", "asin,text\nB1,x\n", "line 1: no 'description' column (found: asin, text)"),
        ("d.csv", "id,description\nB1,x\n", "line 1: expected an 'asin' or 'itemID' column"),
        ("d.csv", "asin,description\nB1,x\nB2,y,z\n", "line 3: expected 2 fields (asin,description), got 3"),
        ("d.csv", "asin,description\nB1,x\n,y\n", "line 3: empty asin"),
        ("d.csv", "itemID,description\n1,x\nseven,y\n", "line 3: itemID: expected an integer, got 'seven'"),
        ("d.csv", "asin,description\nB1,x\nB1,z\n", "line 3: asin 'B1' repeats line 2 with a different description"),
        ("d.json", '{"B1": "x",\n "B2": }', "line 2: invalid JSON"),
        ("d.json", '[{"asin": "B1", "description": 3}]', "record 0: description: expected text, got 3"),
        ("d.json", '[{"asin": "B1", "description": "x"}, {"description": "y"}]', "record 1: missing field 'asin'"),
        ("d.json", '"just text"', "expected an object {asin: description} or a list of records"),
        ("d.jsonl", '{"asin": "B1", "description": "x"}\nnot json\n', "line 2: invalid JSON"),
        ("d.parquet", "not parquet", "not a readable Parquet file"),
        ("d.txt", "B1 x", "unsupported file type"),
    ],
)
def test_malformed_files_fail_with_one_line(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(PrecomputedFormatError) as err:
        read_descriptions(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


def test_missing_file_and_non_utf8(tmp_path):
    with pytest.raises(PrecomputedFormatError, match="descriptions file not found"):
        read_descriptions(tmp_path / "nope.csv")
    path = tmp_path / "latin.csv"
    path.write_bytes("asin,description\nB1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(PrecomputedFormatError, match="not UTF-8 text"):
        read_descriptions(path)


ITEMS = 100


@pytest.mark.parametrize("name, content, expected", [
    ("d.csv", "asin,description\n", "it holds no description at all"),
    ("d.csv", "asin,description\nB001,\nB002,  \n", "it holds no description at all"),
    ("d.json", "{}", "it holds no description at all"),
    ("d.csv", "asin,description\nX1,a\nX2,b\n", "none of its 2 asins matches"),
])
def test_zero_coverage_fails_with_one_line(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(StageError) as err:
        check_coverage(path, read_descriptions(path), 0, ITEMS, "baby", 0.9)
    message = str(err.value)
    assert message.startswith(f"{path}: {expected}") and "matches an item of dataset baby" in message
    assert "\n" not in message


def test_low_coverage_warns_loudly_and_full_coverage_is_quiet(tmp_path, caplog):
    path = tmp_path / "d.csv"
    path.write_text("asin,description\nB001,a\n")
    descriptions = read_descriptions(path)
    with caplog.at_level(logging.WARNING, logger="viral.caption.precomputed"):
        assert check_coverage(path, descriptions, 1, ITEMS, "baby", 0.9) == 0.01
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "describes only 1 of 100 items of dataset baby (1.0%, below caption.min_coverage 90%)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="viral.caption.precomputed"):
        check_coverage(path, descriptions, 90, ITEMS, "baby", 0.9)
        check_coverage(path, descriptions, 1, ITEMS, "baby", 0.0)  # the threshold is a param
    assert caplog.records == []


def test_the_stage_stops_on_a_header_only_file_and_writes_nothing(dataset, fx):
    from viral.caption.run import run_caption

    raw = dataset / "data/raw/synthetic"
    raw.mkdir(parents=True)
    (raw / "descriptions_title.csv").write_text("asin,description\n")
    with pytest.raises(StageError, match="descriptions_title.csv: it holds no description at all"):
        run_caption(fx.make_params(), "title")
    assert not (dataset / "data/captions/synthetic/title.parquet").exists()
