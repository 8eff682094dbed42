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

from viral.caption.backend import make_captioner
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


def test_tiny_model_captions_every_item_in_item_order(dataset, tiny_params):
    report = run_caption(tiny_params(), "title")
    table = read()
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
    assert report["items"] == N_ITEMS and report["captioned"] == N_ITEMS - len(NO_IMAGE)
    assert report["missing_image"] == len(NO_IMAGE) and report["failed"] == 0 and report["from_cache"] == 0
    on_disk = json.loads(Path("results/stages/caption/title.json").read_text())
    assert sorted(p.name for p in OUT.iterdir()) == ["title.parquet"]
    fields = ("items", "captioned", "from_cache", "failed", "wall_seconds", "items_per_s", "generated_tokens_per_s")
    assert set(fields) <= set(on_disk)
    provenance = json.loads(table.schema.metadata[b"viral.caption"])
    assert "{title}" in provenance["template"] and provenance["sampling"]["max_new_tokens"] == 6


def test_second_run_with_nothing_changed_generates_nothing(dataset, tiny_params):
    run_caption(tiny_params(), "title")
    first = read()
    counting = Counting()
    report = run_caption(tiny_params(), "title", make=counting)
    assert counting.loaded == 0 and counting.items == 0  # the model is not even loaded
    assert report["captioned"] == 0 and report["from_cache"] == N_ITEMS - len(NO_IMAGE)
    assert read().equals(first)


def test_killed_run_resumes_with_only_the_rest_and_the_same_file(dataset, tiny_params, tmp_path):
    params = tiny_params()  # shard_items=3: 8 captionable items -> chunks of 3, 3, 2
    run_caption(tiny_params(cache_dir=str(tmp_path / "reference-cache")), "title")
    reference = read()
    (OUT / "title.parquet").unlink()

    with pytest.raises(KeyboardInterrupt):
        run_caption(params, "title", make=Counting(fail_after=2))
    assert not (OUT / "title.parquet").exists()
    resumed = Counting()
    report = run_caption(params, "title", make=resumed)
    assert resumed.items == 2 and report["from_cache"] == 6 and report["captioned"] == 2
    assert read().equals(reference)


def test_editing_the_title_template_invalidates_only_that_prompt(dataset, tiny_params, tmp_path, fx):
    run_caption(tiny_params(), "title")
    run_caption(tiny_params(), "plain")
    templates = yaml_prompts()
    templates["prompts"]["title"] = templates["prompts"]["title"] + " Be brief."
    prompt_file = tmp_path / "prompts.yaml"
    prompt_file.write_text(json.dumps(templates))
    counting = Counting()
    assert run_caption(tiny_params(prompt_file=str(prompt_file)), "title", make=counting)["captioned"] == 8
    assert run_caption(tiny_params(prompt_file=str(prompt_file)), "plain", make=counting)["captioned"] == 0
    assert counting.items == 8


def test_changed_title_or_image_recaptions_exactly_that_item(dataset, tiny_params, fx):
    run_caption(tiny_params(), "title")
    run_caption(tiny_params(), "plain")
    titles = fx.default_titles()
    titles[0] = "Wooden puzzle set"
    fx.write_items(dataset, titles)
    images = fx.default_images()
    images[5] = fx.png_bytes((90, 90), 42)
    fx.write_images(dataset, images)
    counting = Counting()
    assert run_caption(tiny_params(), "title", make=counting)["captioned"] == 2  # item 0 (title), item 5 (image)
    assert run_caption(tiny_params(), "plain", make=counting)["captioned"] == 1  # plain ignores titles
    assert counting.items == 3


def test_items_with_the_same_image_and_prompt_share_one_generation(dataset, tiny_params, fx):
    titles, images = fx.default_titles(), fx.default_images()
    titles[1], images[1] = titles[0], images[0]  # e.g. two sizes of one product
    fx.write_items(dataset, titles)
    fx.write_images(dataset, images)
    counting = Counting()
    report = run_caption(tiny_params(), "title", make=counting)
    assert counting.items == 7 and report["generations"] == 7 and report["captioned"] == 8
    rows = read().to_pylist()
    assert rows[0]["description"] == rows[1]["description"] and rows[1]["status"] == "ok"
    assert run_caption(tiny_params(), "plain", make=counting)["generations"] == 7  # plain: same image, same prompt


def test_sampling_and_model_settings_are_part_of_the_key(dataset, tiny_params):
    run_caption(tiny_params(), "title")
    assert run_caption(tiny_params(max_new_tokens=5), "title")["captioned"] == 8
    assert run_caption(tiny_params(batch_size=2, shard_items=5), "title")["captioned"] == 0  # not in the key


def test_undecodable_image_fails_alone_and_is_retried_next_run(dataset, tiny_params, fx):
    images = fx.default_images()
    images[2] = b"not an image"
    fx.write_images(dataset, images)
    report = run_caption(tiny_params(), "title")
    rows = read().to_pylist()
    assert report["failed"] == 1 and rows[2]["status"] == "failed" and rows[2]["description"] == ""
    assert all(row["status"] == "ok" for row in rows if row["itemID"] not in NO_IMAGE | {2})
    fx.write_images(dataset, fx.default_images())
    counting = Counting()
    assert run_caption(tiny_params(), "title", make=counting)["captioned"] == 1 and counting.items == 1


def test_prompt_not_in_params_is_rejected(dataset, tiny_params):
    with pytest.raises(StageError, match="prompt 'fancy' is not in caption.prompts"):
        run_caption(tiny_params(), "fancy")


def test_missing_images_folder_is_one_line(dataset, tiny_params):
    shutil.rmtree(dataset / "data/images")
    with pytest.raises(StageError, match="no images folder"):
        run_caption(tiny_params(), "title")


def test_precomputed_is_the_shipped_default(dataset, fx):
    raw = dataset / "data/raw/synthetic"
    raw.mkdir(parents=True)
    (raw / "descriptions_title.csv").write_text(
        "asin,description\n"
        + "".join(f'A{i:04d},"A blanket, number {i}."\n' for i in range(N_ITEMS - 1))
        + "ZZZ,other\n"
    )
    params = fx.make_params()
    assert params.caption.backend == "precomputed"
    report = run_caption(params, "title")
    rows = read().to_pylist()
    assert rows[0]["description"] == "A blanket, number 0." and rows[0]["backend"] == "precomputed"
    assert rows[-1]["status"] == "missing" and rows[-1]["description"] == ""
    assert (report["captioned"], report["missing"], report["unmatched_in_file"]) == (N_ITEMS - 1, 1, 1)
    assert report["coverage"] == pytest.approx((N_ITEMS - 1) / N_ITEMS)


def test_stage_script(dataset):
    (dataset / "params.yaml").write_text("dataset: synthetic\nmodel: bpr\n")  # caption defaults: precomputed

    def stage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "stages/caption.py"), *args], capture_output=True, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip

    failed = stage("title")
    assert failed.returncode == 1
    last_line = failed.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: caption: data/raw/synthetic/descriptions_title.csv: descriptions file")
    usage = stage()
    assert usage.returncode != 0 and "usage: python stages/caption.py <prompt>" in usage.stderr

    raw = dataset / "data/raw/synthetic"
    raw.mkdir(parents=True)
    (raw / "descriptions_title.csv").write_text("asin,description\nA0001,A mug.\n")
    assert stage("title").returncode == 0
    assert json.loads(Path("results/stages/caption/title.json").read_text())["captioned"] == 1


def yaml_prompts() -> dict:
    return yaml.safe_load((ROOT / "viral/caption/prompts.yaml").read_text())
