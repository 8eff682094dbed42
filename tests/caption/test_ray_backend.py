"""`caption.backend: ray` on a local 2-CPU Ray with the tiny Qwen2.5-VL: the same table and cache keys as
the transformers backend, resume after a kill with only the missing jobs, and the vLLM engine path
through a test double of `ray.data.llm` (no vLLM or GPU here) that behaves as its documentation says."""
from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import viral.caption.ray_backend as ray_backend
from viral.caption.cache import CaptionCache
from viral.caption.geometry import visual_tokens
from viral.caption.run import run_caption
from viral.stage import StageError

OUT = Path("data/captions/synthetic")
PROMPTS = ("title", "plain")
N_JOBS = 16  # 8 items with images x 2 prompts (conftest)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (starting one takes seconds); the backend reuses a running Ray."""
    import ray
    import ray.cloudpickle

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024**2, log_to_driver=False,
             configure_logging=False)  # fmt: skip
    # This module's test doubles run inside Ray workers, which cannot import a test module by name.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


@pytest.fixture
def ray_params(tiny_params, local_ray):
    def build(**caption):
        ray = dict(engine="transformers", replicas=1, batch_size=4, **caption.pop("ray", {}))
        return tiny_params(backend="ray", ray=ray, **caption)

    return build


def tables() -> dict:
    return {prompt: pq.read_table(OUT / f"{prompt}.parquet") for prompt in PROMPTS}


def cache_keys(folder: Path) -> dict[str, set]:
    return {prompt: set(CaptionCache(folder / "synthetic" / prompt).load()) for prompt in PROMPTS}


def test_ray_matches_the_transformers_backend_and_resumes_after_a_kill(dataset, tiny_params, ray_params, monkeypatch,
                                                                     fx):  # fmt: skip
    images = fx.default_images()
    images[2] = b"not an image"  # fails alone, on both backends
    fx.write_images(dataset, images)
    jobs = N_JOBS - 2
    run_caption(tiny_params(cache_dir="plain-cache"))
    reference = tables()

    params = ray_params(cache_dir="ray-cache", shard_items=4)
    real_append = CaptionCache.append
    appended = []

    def append_then_die(self, rows):
        if len(appended) == 2:  # one batch saved (a part per prompt), then the driver is killed
            raise KeyboardInterrupt("simulated kill")
        appended.append(self.folder.name)
        return real_append(self, rows)

    monkeypatch.setattr(CaptionCache, "append", append_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_caption(params)
    monkeypatch.setattr(CaptionCache, "append", real_append)
    saved = sum(len(keys) for keys in cache_keys(Path("ray-cache")).values())
    assert 4 <= saved < jobs

    reports = run_caption(params)
    assert reports["title"]["backend"] == "ray"
    assert reports["title"]["run_generations"] == jobs - saved  # only the missing jobs were generated
    assert sum(reports[prompt]["from_cache"] for prompt in PROMPTS) == saved
    assert reports["title"]["failed"] == reports["plain"]["failed"] == 1
    for prompt, table in tables().items():
        assert table.equals(reference[prompt]), prompt  # rows and columns; metadata names the executor
        assert table.to_pylist()[2]["status"] == "failed"
    assert cache_keys(Path("ray-cache")) == cache_keys(Path("plain-cache"))
    settings = reports["title"]["engine_settings"]
    assert settings["executor"] == {"name": "ray", "address": "local", "replicas": 1, "batch_size": 4}

    # Same keys, so the in-process backend resumes from what Ray made: only the broken image is retried.
    fx.write_images(dataset, fx.default_images())
    calls = []
    reports = run_caption(tiny_params(cache_dir="ray-cache"), make=lambda config, seed: counting_captioner(calls))
    assert reports["title"]["from_cache"] == 7 and calls == [2]  # item 2, both prompts, in one call


def counting_captioner(calls: list):
    from viral.caption.backend import Generation

    class Counting:
        backend, model = "transformers", "m"

        def generate(self, requests):
            calls.append(len(requests))
            return [Generation("text", 1, 1, "stop") for _ in requests]

    return Counting()


class FakeLLM:
    """Stands in for `ray.data.llm`: records the processor config; the processor runs preprocess, an echo
    engine and postprocess as Ray Data maps, and (as `should_continue_on_error` documents) gives a failed
    row an `__inference_error__` and skips its postprocess."""

    def __init__(self, fail_uuid: str | None = None):
        self.configs: list[dict] = []
        self.fail_uuid = fail_uuid

    def vLLMEngineProcessorConfig(self, **kwargs):  # noqa: N802  (ray's name)
        self.configs.append(kwargs)
        return kwargs

    def build_processor(self, config, preprocess, postprocess):
        fail_uuid = self.fail_uuid

        def engine(row: dict) -> dict:
            image = row.pop("multimodal_data")["image"]
            uuid = row.pop("multimodal_uuids")["image"]
            prompt = row.pop("prompt")
            assert prompt.count("<|image_pad|>") == 1 and prompt.endswith("<|im_start|>assistant\n")
            assert set(row.pop("sampling_params")) == {"max_tokens", "temperature", "repetition_penalty"}
            if uuid == fail_uuid:
                return dict(row, __inference_error__="prompt length exceeds max_model_len", generated_text="",
                            num_input_tokens=0, num_generated_tokens=0)  # fmt: skip
            return dict(
                row, __inference_error__="", generated_text=f" caption of {uuid[:8]} {image.width}x{image.height} ",
                num_input_tokens=visual_tokens(*image.size) + len(prompt), num_generated_tokens=3,
            )  # fmt: skip

        def finish(row: dict) -> dict:
            return row if row["__inference_error__"] else postprocess(row)

        return lambda ds: ds.map(preprocess).map(engine).map(finish)


def test_vllm_engine_on_ray_goes_through_ray_data_llm(dataset, tiny_params, local_ray, monkeypatch, fx):
    import hashlib

    failing = hashlib.sha256(fx.default_images()[5]).hexdigest()
    fake = FakeLLM(fail_uuid=failing)
    monkeypatch.setattr(ray_backend, "llm_api", lambda: fake)
    params = tiny_params(backend="ray", batch_invariant=True, ray=dict(engine="vllm", replicas=2, batch_size=8))
    reports = run_caption(params)
    (config,) = fake.configs
    assert config["model_source"] == params.caption.model
    assert "model" not in config["engine_kwargs"] and "mm_processor_kwargs" not in config["engine_kwargs"]
    assert config["engine_kwargs"]["max_num_seqs"] == 512 and config["engine_kwargs"]["seed"] == params.data_seed
    assert (config["concurrency"], config["batch_size"]) == (2, 8)
    assert config["runtime_env"] == {"env_vars": {"VLLM_BATCH_INVARIANT": "1"}}
    assert not (config["chat_template_stage"] or config["tokenize_stage"] or config["detokenize_stage"])
    assert config["should_continue_on_error"] is True
    for prompt in PROMPTS:
        rows = pq.read_table(OUT / f"{prompt}.parquet").to_pylist()
        assert rows[5]["status"] == "failed" and reports[prompt]["failed"] == 1
        ok = [row for row in rows if row["status"] == "ok"]
        assert [row["itemID"] for row in ok] == [0, 1, 2, 4, 6, 8, 9]
        for row in ok:
            assert row["backend"] == "vllm" and row["description"].startswith("caption of ")
            assert row["generated_tokens"] == 3 and row["finish_reason"] == "stop"
        assert rows[0]["description"] == f"caption of {hashlib.sha256(fx.default_images()[0]).hexdigest()[:8]} 56x56"


def test_replicas_follow_the_cluster_gpus(tiny_params):
    config = tiny_params(backend="ray", tensor_parallel_size=2, ray=dict(engine="vllm")).caption
    assert ray_backend.replicas(config, {"GPU": 8.0, "CPU": 64.0}) == 4
    with pytest.raises(StageError, match="the Ray cluster has 0 GPUs, fewer than one replica needs"):
        ray_backend.replicas(config, {"CPU": 64.0})
    cpu = tiny_params(backend="ray", ray=dict(engine="transformers")).caption
    assert ray_backend.replicas(cpu, {"CPU": 2.0}) == 1
    assert ray_backend.replicas(tiny_params(backend="ray", ray=dict(replicas=3)).caption, {}) == 3


def test_missing_ray_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(StageError, match=r"needs the ray package: pip install 'viral\[ray\]'"):
        ray_backend.import_ray()
