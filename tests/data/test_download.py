"""The download stage per source: mirrors on a local server (2014, 2018, 2023 raw and published splits)
with planted faults, manifest, cache reuse, local imports (MMRec, custom), synthetic generation."""
import gzip
import hashlib
import json

import numpy as np
import pytest

from viral.config import ConfigError
from viral.data.config import DownloadConfig
from viral.data.datasets import parse_datasets
from viral.data.download import gather_dataset, provided_features
from viral.data.http import DownloadError
from viral.stage import StageError

REVIEW = b'{"reviewerID": "U1", "asin": "B1", "overall": 5.0, "unixReviewTime": 1}\n'


def _dataset(name="ds", **entry):
    return parse_datasets({name: entry})[name]


def _serve(server, prefix, paths, body=REVIEW):
    """Serve a gzip body under `prefix` for each relative path; name -> bytes."""
    files = {}
    for index, path in enumerate(paths):
        data = gzip.compress(body * (500 + index))
        server.state.files[f"{prefix}/{path}"] = data
        files[path.rsplit("/", 1)[-1]] = data
    return files


def _config(server, tmp_path, release="amazon2014", **kwargs):
    mirrors = {release: [server.url + "/snap", server.url + "/ucsd"]}
    return DownloadConfig(mirrors=mirrors, retries=2, backoff_s=0.0, timeout_s=5.0,
                          cache_dir=str(tmp_path / "downloads"), **kwargs)


def _gather(raw, dataset, config):
    return gather_dataset(raw, dataset, config, seed=0, show_progress=False)


def test_2014_from_the_fallback_mirror_with_a_dropped_connection(http_server, tmp_path):
    files = _serve(http_server, "/ucsd", ["reviews_Baby_5.json.gz", "meta_Baby.json.gz"])  # /snap answers 404
    http_server.state.faults["/ucsd/meta_Baby.json.gz"] = ["drop"]
    raw = tmp_path / "raw" / "baby"
    manifest = _gather(raw, _dataset(source="amazon2014", category="Baby"), _config(http_server, tmp_path))
    for name, data in files.items():
        assert (raw / name).read_bytes() == data
        assert manifest["files"][name] == {"url": f"{http_server.url}/ucsd/{name}", "size": len(data),
                                           "sha256": hashlib.sha256(data).hexdigest()}
    assert (manifest["source"], manifest["category"]) == ("amazon2014", "Baby")
    assert json.loads((raw / "manifest.json").read_text()) == manifest
    assert sorted(p.name for p in raw.iterdir()) == ["manifest.json", "meta_Baby.json.gz", "reviews_Baby_5.json.gz"]


def test_2018_layout_and_resume_after_500s(http_server, tmp_path):
    paths = ["categoryFilesSmall/All_Beauty_5.json.gz", "metaFiles2/meta_All_Beauty.json.gz"]
    files = _serve(http_server, "/snap", paths)
    http_server.state.faults["/snap/categoryFilesSmall/All_Beauty_5.json.gz"] = ["500", "drop"]
    raw = tmp_path / "raw" / "beauty"
    _gather(raw, _dataset(source="amazon2018", category="All_Beauty"), _config(http_server, tmp_path, "amazon2018"))
    assert {name: (raw / name).read_bytes() for name in files} == files
    assert (tmp_path / "downloads" / "amazon2018" / paths[0]).is_file()  # the cache keeps the release layout


@pytest.mark.parametrize("split, expected", [
    ("random", ["raw/review_categories/Toys_and_Games.jsonl.gz"]),
    ("last_out", ["raw/review_categories/Toys_and_Games.jsonl.gz"]),
    ("published_last_out", [f"benchmark/5core/last_out/Toys_and_Games.{p}.csv.gz" for p in ("train", "valid", "test")]),
    ("published_timestamp", [f"benchmark/5core/timestamp/Toys_and_Games.{p}.csv.gz"
                             for p in ("train", "valid", "test")]),
])
def test_2023_fetches_what_the_split_needs(http_server, tmp_path, split, expected):
    paths = expected + ["raw/meta_categories/meta_Toys_and_Games.jsonl.gz"]
    files = _serve(http_server, "/snap", paths)
    raw = tmp_path / "raw" / "toys"
    manifest = _gather(raw, _dataset(source="amazon2023", category="Toys_and_Games", split=split),
                       _config(http_server, tmp_path, "amazon2023"))
    assert sorted(manifest["files"]) == sorted(files)
    assert {name: (raw / name).read_bytes() for name in files} == files


def test_rerun_uses_the_download_cache(http_server, tmp_path):
    _serve(http_server, "/snap", ["reviews_Baby_5.json.gz", "meta_Baby.json.gz"])
    config, dataset = _config(http_server, tmp_path), _dataset(source="amazon2014", category="Baby")
    _gather(tmp_path / "raw", dataset, config)
    requests = len(http_server.state.requests)
    _gather(tmp_path / "raw", dataset, config)
    assert len(http_server.state.requests) == requests


def test_expected_checksum_is_enforced(http_server, tmp_path):
    files = _serve(http_server, "/snap", ["reviews_Baby_5.json.gz", "meta_Baby.json.gz"])
    good = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    dataset = _dataset(source="amazon2014", category="Baby")
    _gather(tmp_path / "raw", dataset, _config(http_server, tmp_path, sha256=good))
    bad = dict(good, **{"meta_Baby.json.gz": "ab" * 32})
    with pytest.raises(DownloadError, match=r"meta_Baby\.json\.gz: every mirror failed: .*sha256 .* expected abab"):
        _gather(tmp_path / "raw2", dataset, _config(http_server, tmp_path, sha256=bad))
    assert not (tmp_path / "raw2").exists()
    assert not (tmp_path / "downloads" / "amazon2014" / "meta_Baby.json.gz.part").exists()


def test_failure_keeps_the_previous_raw_folder(http_server, tmp_path):
    _serve(http_server, "/snap", ["reviews_Baby_5.json.gz", "meta_Baby.json.gz"])
    raw, dataset = tmp_path / "raw", _dataset(source="amazon2014", category="Baby")
    _gather(raw, dataset, _config(http_server, tmp_path))
    before = {p.name: p.read_bytes() for p in raw.iterdir()}
    with pytest.raises(DownloadError, match="image_features_Baby.b: every mirror failed"):
        _gather(raw, dataset, _config(http_server, tmp_path, image_features=True))
    assert {p.name: p.read_bytes() for p in raw.iterdir()} == before


def test_a_release_without_mirrors_is_one_line(tmp_path):
    config = DownloadConfig(mirrors={"amazon2014": ["http://127.0.0.1:9"]}, cache_dir=str(tmp_path / "d"))
    with pytest.raises(StageError, match=r"download.mirrors.amazon2018: no mirror listed"):
        _gather(tmp_path / "raw", _dataset(source="amazon2018", category="Books"), config)
    with pytest.raises(ConfigError, match="mirrors: unknown release 'amazon2020'"):
        DownloadConfig(mirrors={"amazon2020": []})


def _mmrec_folder(folder, features=True):
    folder.mkdir(parents=True)
    (folder / "toy.inter").write_text("userID\titemID\tx_label\n0\t0\t0\n0\t1\t2\n1\t1\t1\n")
    (folder / "i_id_mapping.csv").write_text("asin\titemID\nB0\t0\nB1\t1\n")
    (folder / "notes.txt").write_text("not ours")
    if features:
        np.save(folder / "text_feat.npy", np.ones((2, 4), np.float32))
        np.save(folder / "image_feat.npy", np.ones((2, 8)))
    return folder


def test_mmrec_folder_is_imported_with_checksums(tmp_path):
    folder = _mmrec_folder(tmp_path / "mm" / "toy")
    raw = tmp_path / "raw" / "toy"
    manifest = _gather(raw, _dataset(source="mmrec", path=str(folder)), DownloadConfig())
    assert sorted(manifest["files"]) == ["i_id_mapping.csv", "image_feat.npy", "text_feat.npy", "toy.inter"]
    entry = manifest["files"]["toy.inter"]
    data = (folder / "toy.inter").read_bytes()
    assert entry == {"url": f"file:{(folder / 'toy.inter').resolve()}", "size": len(data),
                     "sha256": hashlib.sha256(data).hexdigest()}
    assert (raw / "toy.inter").read_bytes() == data
    assert set(provided_features(raw)) == {"text", "image"}


def test_split_mmrec_imports_the_split_files_beside_the_downloads(http_server, tmp_path):
    _serve(http_server, "/snap", ["reviews_Baby_5.json.gz", "meta_Baby.json.gz"])
    folder = _mmrec_folder(tmp_path / "mm" / "baby")
    raw = tmp_path / "raw" / "baby"
    dataset = _dataset(source="amazon2014", category="Baby", split="mmrec", mmrec_dir=str(folder))
    manifest = _gather(raw, dataset, _config(http_server, tmp_path))
    assert sorted(manifest["files"]) == ["meta_Baby.json.gz", "mmrec/i_id_mapping.csv", "mmrec/toy.inter",
                                         "reviews_Baby_5.json.gz"]
    assert (raw / "mmrec" / "toy.inter").is_file() and provided_features(raw) == {}


def test_custom_folder_is_imported_whole(tmp_path):
    folder = tmp_path / "mine"
    (folder / "img").mkdir(parents=True)
    (folder / "interactions.csv").write_text("user,item\nu,i\n")
    (folder / "items.csv").write_text("item,title\ni,T\n")
    (folder / "img" / "i.jpg").write_bytes(b"jpeg")
    (folder / ".hidden").write_text("x")
    manifest = _gather(tmp_path / "raw", _dataset(source="custom", path=str(folder)), DownloadConfig())
    assert sorted(manifest["files"]) == ["img/i.jpg", "interactions.csv", "items.csv"]
    assert (tmp_path / "raw" / "img" / "i.jpg").read_bytes() == b"jpeg"


@pytest.mark.parametrize("entry, message", [
    ({"source": "custom", "path": "{tmp}/none"}, r"none: no such folder \(datasets.ds.path\)"),
    ({"source": "custom", "path": "{tmp}/mine", "items": "products.csv"},
     r"mine: no file 'products.csv' \(datasets.ds.items\); found: interactions.csv, items.csv"),
    ({"source": "mmrec", "path": "{tmp}/mine"},
     r"mine: expected exactly one <name>.inter file, found none \(datasets.ds.path\); found: interactions.csv"),
    ({"source": "amazon2014", "category": "Baby", "split": "mmrec", "mmrec_dir": "{tmp}/none"},
     r"none: no such MMRec data folder \(datasets.ds.mmrec_dir\)"),
])
def test_missing_local_files_are_one_line_listing_what_exists(tmp_path, entry, message):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "interactions.csv").write_text("user,item\n")
    (folder / "items.csv").write_text("item,title\n")
    entry = {key: value.replace("{tmp}", str(tmp_path)) for key, value in entry.items()}
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "keep.txt").write_text("previous")
    with pytest.raises(StageError, match=message) as err:
        _gather(raw, _dataset(**entry), DownloadConfig(cache_dir=str(tmp_path / "d")))
    assert "\n" not in str(err.value)
    assert (raw / "keep.txt").read_text() == "previous"


def test_synthetic_is_generated_with_a_manifest(tmp_path):
    dataset = _dataset(source="synthetic", n_users=60, n_items=30, image_size=32)
    raw = tmp_path / "raw" / "synthetic"
    manifest = gather_dataset(raw, dataset, DownloadConfig(), seed=3)
    assert "reviews_Synthetic_5.json.gz" in manifest["files"] and manifest["seed"] == 3
    assert (manifest["source"], manifest["category"]) == ("synthetic", "Synthetic")
    image = next(name for name in manifest["files"] if name.startswith("images/"))
    data = (raw / image).read_bytes()
    assert manifest["files"][image]["sha256"] == hashlib.sha256(data).hexdigest()
    assert json.loads((raw / "manifest.json").read_text()) == manifest
    assert gather_dataset(tmp_path / "again", dataset, DownloadConfig(), seed=3)["files"] == manifest["files"]
    truth = json.loads((raw / "truth.json").read_text())
    assert set(truth["config"]) == {"n_users", "n_items", "interactions_per_user", "image_size", "noise", "category"}


HTML = b"<!DOCTYPE html><html><body>Please log in</body></html>\n"


def test_a_page_served_with_200_is_not_cached_and_the_next_mirror_is_used(http_server, tmp_path):
    files = _serve(http_server, "/ucsd", ["reviews_Baby_5.json.gz", "meta_Baby.json.gz"])
    http_server.state.files["/snap/meta_Baby.json.gz"] = HTML
    raw = tmp_path / "raw"
    manifest = _gather(raw, _dataset(source="amazon2014", category="Baby"), _config(http_server, tmp_path))
    assert (raw / "meta_Baby.json.gz").read_bytes() == files["meta_Baby.json.gz"]
    assert manifest["files"]["meta_Baby.json.gz"]["url"] == f"{http_server.url}/ucsd/meta_Baby.json.gz"


@pytest.mark.parametrize("damage", [
    lambda path: path.write_bytes(HTML),  # a page cached by an older, unchecked run (record matches it)
    lambda path: path.write_bytes(b"\x1f\x8b" + b"\0" * (path.stat().st_size - 2)),  # same size, bytes rotted
], ids=["page-in-cache", "rotted"])
def test_a_damaged_cached_copy_is_downloaded_again(http_server, tmp_path, damage):
    """prepare's advice for a corrupt gzip ("delete the file and download it again") must work: the copy
    in download.cache_dir is served again only while it is still the file that was recorded."""
    files = _serve(http_server, "/snap", ["reviews_Baby_5.json.gz", "meta_Baby.json.gz"])
    config, dataset = _config(http_server, tmp_path), _dataset(source="amazon2014", category="Baby")
    raw = tmp_path / "raw"
    _gather(raw, dataset, config)
    cached = tmp_path / "downloads" / "amazon2014" / "reviews_Baby_5.json.gz"
    (raw / "reviews_Baby_5.json.gz").unlink()  # the raw copy is a hard link of the cached one
    damage(cached)
    if cached.read_bytes() == HTML:  # as an older run would have recorded it
        record = tmp_path / "downloads" / "amazon2014" / "reviews_Baby_5.json.gz.json"
        record.write_text(json.dumps({"url": "x", "size": len(HTML), "sha256": hashlib.sha256(HTML).hexdigest()}))
    requests = len(http_server.state.requests)
    _gather(raw, dataset, config)
    assert (raw / "reviews_Baby_5.json.gz").read_bytes() == files["reviews_Baby_5.json.gz"]
    assert [path for path, _ in http_server.state.requests[requests:]] == ["/snap/reviews_Baby_5.json.gz"]
