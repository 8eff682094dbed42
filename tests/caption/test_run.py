"""The caption stage end to end on the tiny Qwen2.5-VL: order, resume, incremental reruns, cache keys."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from viral.caption.backend import Generation, make_captioner
from viral.caption.output import OUTPUT_SCHEMA
from viral.caption.run import run_caption
from viral.stage import StageError

OUT = Path("data/captions/synthetic")
ROOT = Path(__file__).resolve().parents[2]
N_ITEMS, NO_IMAGE = 10, {3, 7}  # as in conftest


class Counting:
    """Wraps the real factory: counts generated items and can fail after `fail_after` generate calls."""

    def __init__(self, fail_after: int | None = None):
        self.fail_after = fail_after
        self.calls = 0
        self.items = 0
        self.loaded = 0

    def __call__(self, config, seed):
        self.loaded += 1
        captioner = make_captioner(config, seed)
        counter = self

        class Wrapped:
            backend, model = captioner.backend, captioner.model

            def generate(self, requests):
                if counter.fail_after is not None and counter.calls >= counter.fail_after:
                    raise KeyboardInterrupt("simulated kill")
                counter.calls += 1
                counter.items += len(requests)
                return captioner.generate(requests)

        return Wrapped()


def read(prompt: str = "title"):
    return pq.read_table(OUT / f"{prompt}.parquet")


def test_tiny_model_captions_every_item_and_prompt_in_item_order(dataset, tiny_params):
    counting = Counting()
    reports = run_caption(tiny_params(), make=counting)
    assert counting.loaded == 1 and counting.items == 2 * (N_ITEMS - len(NO_IMAGE))  # one model, both prompts
    assert sorted(p.name for p in OUT.iterdir()) == ["plain.parquet", "title.parquet"]
    run_report = json.loads(Path("results/stages/caption.json").read_text())["prompts"]
    for prompt in ("title", "plain"):
        table = read(prompt)
        assert table.schema.remove_metadata() == OUTPUT_SCHEMA
        rows = table.to_pylist()
        assert [row["itemID"] for row in rows] == list(range(N_ITEMS))
        assert [row["asin"] for row in rows] == [f"A{i:04d}" for i in range(N_ITEMS)]
        for row in rows:
            if row["itemID"] in NO_IMAGE:
                assert (row["status"], row["description"], row["generated_tokens"]) == ("missing_image", "", None)
            else:
                assert row["status"] == "ok" and row["description"].strip()
                assert row["backend"] == "transformers" and row["model"] == str(tiny_params().caption.model)
                assert 1 <= row["generated_tokens"] <= 6 and row["prompt_tokens"] > 16
                assert row["finish_reason"] in ("stop", "length")
                assert len(row["prompt_hash"]) == 16
        report = reports[prompt]
        assert report["items"] == N_ITEMS and report["captioned"] == N_ITEMS - len(NO_IMAGE)
        assert report["missing_image"] == len(NO_IMAGE) and report["failed"] == 0 and report["from_cache"] == 0
        on_disk = run_report[prompt]
        fields = ("items", "captioned", "from_cache", "failed", "items_per_s", "generated_tokens_per_s")
        assert set(fields) <= set(on_disk) and on_disk["prompt"] == prompt
        assert on_disk["run_generations"] == 2 * (N_ITEMS - len(NO_IMAGE))
    assert read("title").column("prompt_hash")[0] != read("plain").column("prompt_hash")[0]


def test_engine_settings_and_library_versions_are_recorded(dataset, tiny_params):
    import PIL
    import transformers

    run_caption(tiny_params(batch_size=3))
    provenance = json.loads(read().schema.metadata[b"viral.caption"])
    assert "{title}" in provenance["template"] and provenance["sampling"]["max_new_tokens"] == 6
    settings = provenance["engine_settings"]
    assert settings["engine"] == "transformers" and settings["batch_size"] == 3 and settings["device"] == "cpu"
    assert settings["geometry"].startswith("qwen2.5-vl-grid/factor=28") and settings["max_pixels"] == 16 * 28 * 28
    assert settings["executor"] == {"name": "local", "chunk": 3}
    versions = provenance["versions"]
    assert versions["transformers"] == transformers.__version__ and versions["pillow"] == PIL.__version__
    assert versions["vllm"] is None  # not installed here, and said so
    report = json.loads(Path("results/stages/caption.json").read_text())["prompts"]["plain"]
    assert report["engine_settings"] == settings and report["versions"] == versions


def test_second_run_with_nothing_changed_generates_nothing(dataset, tiny_params):
    run_caption(tiny_params())
    first = {prompt: read(prompt) for prompt in ("title", "plain")}
    counting = Counting()
    reports = run_caption(tiny_params(), make=counting)
    assert counting.loaded == 0 and counting.items == 0  # the model is not even loaded
    for prompt in ("title", "plain"):
        assert reports[prompt]["captioned"] == 0 and reports[prompt]["from_cache"] == N_ITEMS - len(NO_IMAGE)
        assert read(prompt).equals(first[prompt])


def test_killed_run_resumes_with_only_the_rest_and_the_same_files(dataset, tiny_params, tmp_path):
    params = tiny_params()  # shard_items=3: 8 images x 2 prompts = 16 generations -> chunks of 3, 3, 3, 3, 3, 1
    run_caption(tiny_params(cache_dir=str(tmp_path / "reference-cache")))
    reference = {prompt: read(prompt) for prompt in ("title", "plain")}
    shutil.rmtree(OUT)

    with pytest.raises(KeyboardInterrupt):
        run_caption(params, make=Counting(fail_after=2))
    assert not OUT.exists()
    resumed = Counting()
    reports = run_caption(params, make=resumed)
    assert resumed.items == 16 - 6
    assert reports["title"]["from_cache"] + reports["plain"]["from_cache"] == 6
    assert reports["title"]["captioned"] + reports["plain"]["captioned"] == 10
    for prompt in ("title", "plain"):
        assert read(prompt).equals(reference[prompt])


def test_the_next_chunk_is_decoded_while_the_current_one_generates(dataset, tiny_params, monkeypatch, fx):
    import threading

    import viral.caption.feed as feed

    images = fx.default_images()
    decoded = []
    item_2_decoded = threading.Event()
    real_prepare = feed.prepare_image

    def prepare(data, max_pixels):
        decoded.append(data)
        if data == images[2]:
            item_2_decoded.set()
        return real_prepare(data, max_pixels)

    monkeypatch.setattr(feed, "prepare_image", prepare)
    waited = []

    class Waiting:
        backend, model = "transformers", "m"

        def generate(self, requests):
            if not waited:  # chunk 1 is item 0 (title, plain) and item 1 (title); item 2 is in chunk 2
                waited.append(item_2_decoded.wait(timeout=60))
            return [Generation("text", 1, 1, "stop") for _ in requests]

    run_caption(tiny_params(), make=lambda config, seed: Waiting())  # shard_items=3
    assert waited == [True]  # chunk 2 was decoded while chunk 1 was inside generate
    assert decoded.count(images[0]) == 1  # one decode serves both prompts of an image in a chunk


def test_editing_the_title_template_invalidates_only_that_prompt(dataset, tiny_params, tmp_path):
    run_caption(tiny_params())
    templates = yaml_prompts()
    templates["prompts"]["title"] = templates["prompts"]["title"] + " Be brief."
    prompt_file = tmp_path / "prompts.yaml"
    prompt_file.write_text(json.dumps(templates))
    counting = Counting()
    reports = run_caption(tiny_params(prompt_file=str(prompt_file)), make=counting)
    assert (reports["title"]["captioned"], reports["plain"]["captioned"]) == (8, 0)
    assert counting.items == 8


def test_changed_title_or_image_recaptions_exactly_that_item(dataset, tiny_params, fx):
    run_caption(tiny_params())
    titles = fx.default_titles()
    titles[0] = "Wooden puzzle set"
    fx.write_items(dataset, titles)
    images = fx.default_images()
    images[5] = fx.png_bytes((90, 90), 42)
    fx.write_images(dataset, images)
    counting = Counting()
    reports = run_caption(tiny_params(), make=counting)
    assert reports["title"]["captioned"] == 2  # item 0 (title), item 5 (image)
    assert reports["plain"]["captioned"] == 1  # plain ignores titles
    assert counting.items == 3


def test_items_with_the_same_image_and_prompt_share_one_generation(dataset, tiny_params, fx):
    titles, images = fx.default_titles(), fx.default_images()
    titles[1], images[1] = titles[0], images[0]  # e.g. two sizes of one product
    fx.write_items(dataset, titles)
    fx.write_images(dataset, images)
    counting = Counting()
    reports = run_caption(tiny_params(), make=counting)
    assert counting.items == 14 and reports["title"]["generations"] == reports["plain"]["generations"] == 7
    assert reports["title"]["captioned"] == 8
    for prompt in ("title", "plain"):
        rows = read(prompt).to_pylist()
        assert rows[0]["description"] == rows[1]["description"] and rows[1]["status"] == "ok"


def test_sampling_and_model_settings_are_part_of_the_key(dataset, tiny_params):
    run_caption(tiny_params())
    assert run_caption(tiny_params(max_new_tokens=5))["title"]["captioned"] == 8
    reports = run_caption(tiny_params(batch_size=2, shard_items=5, decode_workers=1))  # not in the key
    assert reports["title"]["captioned"] == reports["plain"]["captioned"] == 0


def test_undecodable_image_fails_alone_and_is_retried_next_run(dataset, tiny_params, fx):
    images = fx.default_images()
    images[2] = b"not an image"
    fx.write_images(dataset, images)
    reports = run_caption(tiny_params())
    for prompt in ("title", "plain"):
        rows = read(prompt).to_pylist()
        assert reports[prompt]["failed"] == 1 and rows[2]["status"] == "failed" and rows[2]["description"] == ""
        assert all(row["status"] == "ok" for row in rows if row["itemID"] not in NO_IMAGE | {2})
    fx.write_images(dataset, fx.default_images())
    counting = Counting()
    reports = run_caption(tiny_params(), make=counting)
    assert reports["title"]["captioned"] == reports["plain"]["captioned"] == 1 and counting.items == 2


def test_too_elongated_image_fails_alone_with_the_reason(dataset, tiny_params, fx, caplog):
    images = fx.default_images()
    images[4] = fx.png_bytes((28 * 250, 28), 7)
    fx.write_images(dataset, images)
    reports = run_caption(tiny_params())
    assert reports["title"]["failed"] == 1 and read().to_pylist()[4]["status"] == "failed"
    assert "image geometry: ImageGeometryError: image of 7000x28 pixels has aspect ratio 250:1" in caplog.text


def test_systematic_failure_stops_with_the_first_error(dataset, tiny_params):
    class Broken:
        backend, model = "transformers", "m"

        def generate(self, requests):
            return [Generation.failed("CUDA error: no kernel image") for _ in requests]

    with pytest.raises(StageError, match="the first 9 generations all failed; first error: CUDA error"):
        run_caption(tiny_params(), make=lambda config, seed: Broken())


def test_the_output_folder_holds_exactly_the_configured_prompts(dataset, tiny_params):
    run_caption(tiny_params())
    run_caption(tiny_params(prompts=["plain"]))
    assert sorted(p.name for p in OUT.iterdir()) == ["plain.parquet"]


def test_missing_images_folder_is_one_line(dataset, tiny_params):
    shutil.rmtree(dataset / "data/images")
    with pytest.raises(StageError, match="no images folder"):
        run_caption(tiny_params())


def write_descriptions(dataset: Path, prompt: str, n: int) -> None:
    raw = dataset / "data/raw/synthetic"
    raw.mkdir(parents=True, exist_ok=True)
    lines = "".join(f'A{i:04d},"A {prompt} blanket, number {i}."\n' for i in range(n))
    (raw / f"descriptions_{prompt}.csv").write_text("asin,description\n" + lines + "ZZZ,other\n")


def test_precomputed_is_the_shipped_default(dataset, fx):
    write_descriptions(dataset, "title", N_ITEMS - 1)
    write_descriptions(dataset, "plain", N_ITEMS)
    params = fx.make_params()
    assert params.caption.backend == "precomputed"
    reports = run_caption(params)
    rows = read().to_pylist()
    assert rows[0]["description"] == "A title blanket, number 0." and rows[0]["backend"] == "precomputed"
    assert rows[-1]["status"] == "missing" and rows[-1]["description"] == ""
    report = reports["title"]
    assert (report["captioned"], report["missing"], report["unmatched_in_file"]) == (N_ITEMS - 1, 1, 1)
    assert report["coverage"] == pytest.approx((N_ITEMS - 1) / N_ITEMS)
    assert reports["plain"]["captioned"] == N_ITEMS and read("plain").to_pylist()[-1]["status"] == "ok"


def test_stage_script(dataset):
    (dataset / "params.yaml").write_text("dataset: synthetic\nmodel: bpr\n")  # caption defaults: precomputed

    def stage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "stages/caption.py"), *args], capture_output=True, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip

    failed = stage()
    assert failed.returncode == 1
    last_line = failed.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: caption: data/raw/synthetic/descriptions_title.csv: descriptions file")
    usage = stage("title")
    assert usage.returncode != 0 and "usage: python stages/caption.py" in usage.stderr

    write_descriptions(dataset, "title", 2)
    write_descriptions(dataset, "plain", 1)
    assert stage().returncode == 0
    run_report = json.loads(Path("results/stages/caption.json").read_text())["prompts"]
    assert (run_report["title"]["captioned"], run_report["plain"]["captioned"]) == (2, 1)


def yaml_prompts() -> dict:
    return yaml.safe_load((ROOT / "viral/caption/prompts.yaml").read_text())
