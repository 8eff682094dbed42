"""The shard format readers: shards concatenate in itemID order, the status table round-trips."""
import io

import pyarrow as pa
import pytest
from PIL import Image

from viral.data.image_store import IMAGE_SCHEMA, STATUS_SCHEMA, shard_name
from viral.data.images import load_image_status, load_images
from viral.io import write_parquet


def _jpeg(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 3), color).save(buf, format="JPEG")
    return buf.getvalue()


def _shard(rows):
    return pa.Table.from_pylist(
        [
            {"itemID": i, "asin": f"A{i}", "image": _jpeg("red"), "sha256": "x", "width": 4, "height": 3}
            for i in rows
        ],
        schema=IMAGE_SCHEMA,
    )


def test_load_images_concatenates_shards_sorted_by_item(tmp_path):
    write_parquet(tmp_path / shard_name(1), _shard([5, 3]))
    write_parquet(tmp_path / shard_name(0), _shard([4, 0]))
    table = load_images(tmp_path)
    assert table.schema == IMAGE_SCHEMA
    assert table.column("itemID").to_pylist() == [0, 3, 4, 5]
    assert Image.open(io.BytesIO(table.column("image")[0].as_py())).size == (4, 3)


def test_load_images_empty_folder_gives_empty_table(tmp_path):
    assert load_images(tmp_path).num_rows == 0


def test_load_images_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_images(tmp_path / "nope")


def test_load_image_status_sorted(tmp_path):
    rows = [
        {"itemID": 2, "asin": "B", "status": "empty_url", "detail": ""},
        {"itemID": 0, "asin": "A", "status": "ok", "detail": ""},
    ]
    write_parquet(tmp_path / "status.parquet", pa.Table.from_pylist(rows, schema=STATUS_SCHEMA))
    frame = load_image_status(tmp_path)
    assert frame["itemID"].tolist() == [0, 2]
    assert frame["status"].tolist() == ["ok", "empty_url"]
