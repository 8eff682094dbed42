"""Shared backend pieces: failure bisection, sampling key, config validation."""
from __future__ import annotations

import pytest

from viral.caption.backend import Generation, Sampling, bisect_failures, make_captioner
from viral.caption.config import CaptionConfig
from viral.config import ConfigError, build
from viral.stage import StageError


class Model:
    """Stands in for a model call: raises when a bad item is in the batch, else echoes each item."""

    def __init__(self, bad: set[str]):
        self.bad = bad
        self.calls: list[list[str]] = []

    def __call__(self, batch):
        self.calls.append(list(batch))
        if self.bad & set(batch):
            raise ValueError(f"prompt too long in a batch of {len(batch)}\nsecond line of the traceback text")
        return [Generation(f"caption {item}", 3, 2, "stop") for item in batch]


def test_bisection_isolates_one_bad_item_in_a_chunk():
    items = [f"i{n}" for n in range(16)]
    model = Model(bad={"i11"})
    results = bisect_failures(model, items)
    assert [r.text for r in results] == [("" if i == "i11" else f"caption {i}") for i in items]
    assert results[11] == Generation.failed("ValueError: prompt too long in a batch of 1")
    # The whole chunk, then halves down to the culprit: 1 + 2 * log2(16) calls, not 1 + 16.
    assert len(model.calls) == 1 + 2 * 4
    assert sorted(len(call) for call in model.calls if "i11" not in call) == [1, 2, 4, 8]  # good halves stay batched


def test_bisection_with_several_or_no_bad_items():
    items = [f"i{n}" for n in range(10)]
    results = bisect_failures(Model(bad={"i0", "i9", "i4"}), items)
    assert [i for i, r in zip(items, results) if r.error] == ["i0", "i4", "i9"]
    assert all(r.text == f"caption {i}" for i, r in zip(items, results) if not r.error)
    model = Model(bad=set())
    assert len(bisect_failures(model, items)) == 10 and len(model.calls) == 1


def test_sampling_key_ignores_the_seed_only_when_greedy():
    assert "seed" not in Sampling(8, 0.0, 1.05, seed=1).key()
    assert Sampling(8, 0.7, 1.05, seed=1).key() != Sampling(8, 0.7, 1.05, seed=2).key()


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"temperature": -0.1}, "caption.temperature: expected >= 0 (0 = greedy), got -0.1"),
        ({"batch_size": 0}, "caption.batch_size: expected >= 1, got 0"),
        ({"gpu_memory_utilization": 1.5}, "caption.gpu_memory_utilization: expected > 0 and <= 1, got 1.5"),
        ({"max_pixels": 100}, "caption.max_pixels: expected >= 3136, got 100"),
        ({"prompts": []}, "caption: prompts: expected at least one"),
        ({"prompts": ["title", "title"]}, "caption: prompts: each name at most once"),
        ({"prompts": ["fancy"]}, "caption.prompts[0]: got 'fancy', expected one of title, plain"),
        ({"backend": "vllm", "max_model_len": 1300}, "caption: max_model_len: 1300 cannot hold 1280 visual tokens"),
        ({"backend": "ray", "max_num_batched_tokens": 1000}, "caption: max_num_batched_tokens: 1000 is below the 1280"),
        ({"ray": {"engine": "sglang"}}, "caption.ray.engine: got 'sglang', expected one of transformers, vllm"),
        ({"ray": {"replicas": -1}}, "caption.ray.replicas: expected >= 0, got -1"),
        ({"ray": {"adress": "auto"}}, "caption.ray: unknown key 'adress'"),
    ],
)
def test_bad_caption_params(raw, expected):
    with pytest.raises(ConfigError) as err:
        build(CaptionConfig, raw, "caption")
    assert expected in str(err.value)


def test_precomputed_has_no_model():
    with pytest.raises(StageError, match="precomputed imports descriptions"):
        make_captioner(CaptionConfig(), seed=0)


def test_the_engine_names_the_cache_key_backend():
    assert build(CaptionConfig, {"backend": "vllm"}, "caption").engine == "vllm"
    ray = build(CaptionConfig, {"backend": "ray", "ray": {"engine": "transformers", "address": "auto"}}, "caption")
    assert (ray.engine, ray.ray.address, ray.ray.replicas) == ("transformers", "auto", 0)
    # Checks of vLLM limits apply only where vLLM runs.
    assert build(CaptionConfig, {"backend": "transformers", "max_model_len": 10}, "caption").max_model_len == 10
