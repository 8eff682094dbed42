"""The download stage: mirrors on a local server, manifest, cache reuse, synthetic generation."""
import gzip
import hashlib
import json

import pytest

from viral.data.config import DownloadConfig, SyntheticConfig
from viral.data.download import download_dataset, generate_dataset
from viral.data.http import DownloadError


def _serve_category(server, prefix, cat="Baby"):
    reviews = gzip.compress(b'{"reviewerID": "U1", "asin": "B1", "overall": 5.0, "unixReviewTime": 1}\n' * 1000)
    meta = gzip.compress(b"{'asin': 'B1', 'title': 'x'}\n" * 1000)
    server.state.files[f"{prefix}/reviews_{cat}_5.json.gz"] = reviews
    server.state.files[f"{prefix}/meta_{cat}.json.gz"] = meta
    return {f"reviews_{cat}_5.json.gz": reviews, f"meta_{cat}.json.gz": meta}


def _config(server, tmp_path, **kwargs):
    mirrors = [server.url + "/snap", server.url + "/ucsd"]
    return DownloadConfig(mirrors=mirrors, retries=2, backoff_s=0.0, timeout_s=5.0,
                          cache_dir=str(tmp_path / "downloads"), **kwargs)


def test_downloads_from_the_fallback_mirror_and_writes_the_manifest(http_server, tmp_path):
    files = _serve_category(http_server, "/ucsd")  # the first mirror answers 404
    http_server.state.faults["/ucsd/meta_Baby.json.gz"] = ["drop"]
    raw = tmp_path / "raw" / "baby"
    manifest = download_dataset(raw, "Baby", _config(http_server, tmp_path), show_progress=False)
    for name, data in files.items():
        assert (raw / name).read_bytes() == data
        entry = manifest["files"][name]
        assert entry == {"url": f"{http_server.url}/ucsd/{name}", "size": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()}
    assert json.loads((raw / "manifest.json").read_text()) == manifest
    assert sorted(p.name for p in raw.iterdir()) == ["manifest.json", "meta_Baby.json.gz", "reviews_Baby_5.json.gz"]


def test_rerun_uses_the_download_cache(http_server, tmp_path):
    _serve_category(http_server, "/snap")
    config = _config(http_server, tmp_path)
    download_dataset(tmp_path / "raw", "Baby", config, show_progress=False)
    requests = len(http_server.state.requests)
    download_dataset(tmp_path / "raw", "Baby", config, show_progress=False)
    assert len(http_server.state.requests) == requests


def test_expected_checksum_is_enforced(http_server, tmp_path):
    files = _serve_category(http_server, "/snap")
    good = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    download_dataset(tmp_path / "raw", "Baby", _config(http_server, tmp_path, sha256=good), show_progress=False)
    bad = dict(good, **{"meta_Baby.json.gz": "ab" * 32})
    with pytest.raises(DownloadError, match=r"meta_Baby\.json\.gz: every mirror failed: .*sha256 .* expected abab"):
        download_dataset(tmp_path / "raw2", "Baby", _config(http_server, tmp_path, sha256=bad), show_progress=False)
    assert not (tmp_path / "raw2").exists()
    assert not (tmp_path / "downloads" / "meta_Baby.json.gz.part").exists()


def test_failure_keeps_the_previous_raw_folder(http_server, tmp_path):
    _serve_category(http_server, "/snap")
    raw = tmp_path / "raw"
    download_dataset(raw, "Baby", _config(http_server, tmp_path), show_progress=False)
    before = {p.name: p.read_bytes() for p in raw.iterdir()}
    with pytest.raises(DownloadError, match="image_features_Baby.b: every mirror failed"):
        download_dataset(raw, "Baby", _config(http_server, tmp_path, image_features=True), show_progress=False)
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before


def test_synthetic_goes_through_generate_with_a_manifest(tmp_path):
    config = DownloadConfig(synthetic=SyntheticConfig(n_users=60, n_items=30, image_size=32))
    raw = tmp_path / "raw" / "synthetic"
    manifest = generate_dataset(raw, config, seed=3)
    assert "reviews_Synthetic_5.json.gz" in manifest["files"] and manifest["seed"] == 3
    image = next(name for name in manifest["files"] if name.startswith("images/"))
    data = (raw / image).read_bytes()
    assert manifest["files"][image]["sha256"] == hashlib.sha256(data).hexdigest()
    assert json.loads((raw / "manifest.json").read_text()) == manifest
    assert generate_dataset(tmp_path / "again", config, seed=3)["files"] == manifest["files"]


HTML = b"<!DOCTYPE html><html><body>Please log in</body></html>\n"


def test_a_page_served_with_200_is_not_cached_and_the_next_mirror_is_used(http_server, tmp_path):
    files = _serve_category(http_server, "/ucsd")
    http_server.state.files["/snap/meta_Baby.json.gz"] = HTML
    raw = tmp_path / "raw"
    manifest = download_dataset(raw, "Baby", _config(http_server, tmp_path), show_progress=False)
    assert (raw / "meta_Baby.json.gz").read_bytes() == files["meta_Baby.json.gz"]
    assert manifest["files"]["meta_Baby.json.gz"]["url"] == f"{http_server.url}/ucsd/meta_Baby.json.gz"


@pytest.mark.parametrize("damage", [
    lambda path: path.write_bytes(HTML),  # a page cached by an older, unchecked run (record matches it)
    lambda path: path.write_bytes(b"\x1f\x8b" + b"\0" * (path.stat().st_size - 2)),  # same size, bytes rotted
], ids=["page-in-cache", "rotted"])
def test_a_damaged_cached_copy_is_downloaded_again(http_server, tmp_path, damage):
    """prepare's advice for a corrupt gzip ("delete the file and download it again") must work: the copy
    in download.cache_dir is served again only while it is still the file that was recorded."""
    files = _serve_category(http_server, "/snap")
    config = _config(http_server, tmp_path)
    raw = tmp_path / "raw"
    download_dataset(raw, "Baby", config, show_progress=False)
    cached = tmp_path / "downloads" / "reviews_Baby_5.json.gz"
    (raw / "reviews_Baby_5.json.gz").unlink()  # the raw copy is a hard link of the cached one
    damage(cached)
    if cached.read_bytes() == HTML:  # as an older run would have recorded it
        record = tmp_path / "downloads" / "reviews_Baby_5.json.gz.json"
        record.write_text(json.dumps({"url": "x", "size": len(HTML), "sha256": hashlib.sha256(HTML).hexdigest()}))
    requests = len(http_server.state.requests)
    download_dataset(raw, "Baby", config, show_progress=False)
    assert (raw / "reviews_Baby_5.json.gz").read_bytes() == files["reviews_Baby_5.json.gz"]
    assert [path for path, _ in http_server.state.requests[requests:]] == ["/snap/reviews_Baby_5.json.gz"]
