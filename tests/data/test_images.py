"""The images stage against a local HTTP server: every status, shards, resume after interruption."""
import io

import pandas as pd
import pytest
from PIL import Image

import viral.data.images as images_module
from viral.data.config import ImagesConfig
from viral.data.images import fetch_images, fetch_one, load_image_status, load_images


def _jpeg(color="red", size=(6, 4)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()


CONFIG = ImagesConfig(concurrency=4, retries=1, timeout_s=0.5, backoff_s=0.0, shard_items=3)


@pytest.fixture
def catalog(http_server, tmp_path):
    """Seven items covering every status, served by the local server or read from the raw folder."""
    files = http_server.state.files
    files["/a.jpg"] = _jpeg("red")
    files["/b.jpg"] = _jpeg("blue", (3, 5))
    files["/page.jpg"] = b"<html><body>Moved</body></html>"
    http_server.state.types["/page.jpg"] = "text/html"
    files["/cut.jpg"] = _jpeg("green")[:40]
    raw = tmp_path / "raw"
    (raw / "images").mkdir(parents=True)
    (raw / "images" / "L1.jpg").write_bytes(_jpeg("yellow", (2, 2)))
    url = http_server.url
    items = pd.DataFrame({
        "itemID": [6, 5, 4, 3, 2, 1, 0],
        "asin": ["A6", "A5", "A4", "A3", "A2", "A1", "A0"],
        "imUrl": [f"{url}/a.jpg", f"{url}/page.jpg", "", f"{url}/gone.jpg", "images/L1.jpg", f"{url}/cut.jpg",
                  f"{url}/b.jpg"],
    })
    return items, raw


EXPECTED = {0: "ok", 1: "not_image", 2: "ok", 3: "http_error", 4: "empty_url", 5: "not_image", 6: "ok"}


def test_every_status_and_the_shards(catalog, tmp_path):
    items, raw = catalog
    out = tmp_path / "out"
    report = fetch_images(items, raw, out, tmp_path / "cache", CONFIG)
    status = load_image_status(out)
    assert dict(zip(status["itemID"], status["status"])) == EXPECTED
    detail = status.set_index("itemID")["detail"]
    assert "text/html" in detail[5] and "Truncated" in detail[1] and "404" in detail[3]
    table = load_images(out)
    assert table.column("itemID").to_pylist() == [0, 2, 6]
    assert table.column("asin").to_pylist() == ["A0", "A2", "A6"]
    assert (table.column("width").to_pylist(), table.column("height").to_pylist()) == ([3, 2, 6], [5, 2, 4])
    assert table.column("image")[0].as_py() == _jpeg("blue", (3, 5))
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "shard-00000.parquet", "shard-00001.parquet",
                                                      "shard-00002.parquet", "status.parquet"]
    assert report["status"] == {"ok": 3, "http_error": 1, "not_image": 2, "empty_url": 1, "timeout": 0, "error": 0,
                                "skipped": 0}
    assert report["shards"] == 3 and report["shards_reused"] == 0


def test_rerun_reuses_completed_shards_and_refetches_changed_ones(catalog, tmp_path, http_server):
    items, raw = catalog
    fetch_images(items, raw, tmp_path / "out", tmp_path / "cache", CONFIG)
    before = len(http_server.state.requests)
    report = fetch_images(items, raw, tmp_path / "out", tmp_path / "cache", CONFIG)
    assert report["shards_reused"] == 3 and len(http_server.state.requests) == before
    changed = items.copy()
    changed.loc[changed["itemID"] == 0, "imUrl"] = f"{http_server.url}/a.jpg"
    report = fetch_images(changed, raw, tmp_path / "out", tmp_path / "cache", CONFIG)
    assert report["shards_reused"] == 2
    assert len(list((tmp_path / "cache").glob("*.parquet"))) == 6  # the stale shard was removed


def test_interrupted_run_leaves_no_output_and_resumes(catalog, tmp_path, monkeypatch, http_server):
    items, raw = catalog
    real = images_module._fetch_shard
    calls = []

    def crash_on_second(chunk, *args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(chunk, *args)

    monkeypatch.setattr(images_module, "_fetch_shard", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        fetch_images(items, raw, tmp_path / "out", tmp_path / "cache", CONFIG)
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(images_module, "_fetch_shard", real)
    report = fetch_images(items, raw, tmp_path / "out", tmp_path / "cache", CONFIG)
    assert report["shards_reused"] == 1
    assert dict(zip(*load_image_status(tmp_path / "out")[["itemID", "status"]].T.values)) == EXPECTED


def test_transient_failures_are_retried_and_refetched_on_rerun(http_server, tmp_path):
    http_server.state.files["/a.jpg"] = _jpeg()
    url = f"{http_server.url}/a.jpg"
    http_server.state.faults["/a.jpg"] = ["500"]
    assert fetch_one(url, tmp_path, CONFIG).status == "ok"  # 500 then success
    http_server.state.faults["/a.jpg"] = ["slow", "slow"]
    outcome = fetch_one(url, tmp_path, CONFIG)
    assert outcome.status == "timeout" and "timed out" in outcome.detail
    items = pd.DataFrame({"itemID": [0], "asin": ["A0"], "imUrl": [url]})
    http_server.state.faults["/a.jpg"] = ["slow", "slow"]
    first = fetch_images(items, tmp_path, tmp_path / "out", tmp_path / "cache", CONFIG)
    assert first["status"]["timeout"] == 1
    second = fetch_images(items, tmp_path, tmp_path / "out", tmp_path / "cache", CONFIG)
    assert second["shards_reused"] == 0 and second["status"]["ok"] == 1


def test_missing_local_file_and_bad_scheme_are_errors(tmp_path):
    assert fetch_one("images/none.jpg", tmp_path, CONFIG).status == "error"
    assert fetch_one(None, tmp_path, CONFIG).status == "empty_url"
    assert fetch_one("   ", tmp_path, CONFIG).status == "empty_url"
