import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from viral.encode.text import item_text, read_item_texts
from viral.stage import StageError


def test_full_item_follows_mmrec_recipe():
    text = item_text("Soft Bib", "Acme", [["Baby", "Feeding", "Bibs"], ["Other", "Path"]], "Keeps\nclean.")
    assert text == "Soft Bib Acme Baby Feeding Bibs Keeps clean."


def test_missing_fields_are_empty_and_only_first_path_counts():
    assert item_text(None, "", [], None) == "  "
    assert item_text("T", None, None, "d") == "T  d"
    assert item_text("", "B", [[], ["Ignored"]], "") == " B "
    assert item_text("a\nb", "c\n", [["x\ny"]], "") == "a b c  x y "


def test_read_item_texts_in_file_order(tmp_path):
    table = pa.table({
        "itemID": [0, 1],
        "asin": ["A000000000", "A000000001"],
        "title": ["Cup", None],
        "brand": ["Z", ""],
        "description": ["", "Only words"],
        "categories": pa.array([[["Baby", "Cups"]], []], pa.list_(pa.list_(pa.string()))),
    })
    pq.write_table(table, tmp_path / "items.parquet")
    ids, texts = read_item_texts(tmp_path / "items.parquet")
    assert ids == [0, 1]
    assert texts == ["Cup Z Baby Cups ", "  Only words"]


def test_missing_items_file_or_column_is_one_line(tmp_path):
    with pytest.raises(StageError, match="items.parquet: prepared items .* not found"):
        read_item_texts(tmp_path / "items.parquet")
    pq.write_table(pa.table({"itemID": [0], "title": ["x"]}), tmp_path / "items.parquet")
    with pytest.raises(StageError, match="lacks column\\(s\\) brand, categories, description"):
        read_item_texts(tmp_path / "items.parquet")
