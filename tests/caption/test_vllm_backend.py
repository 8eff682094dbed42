"""vllm backend around a fake `LLM` (no vLLM or GPU here): engine and sampling arguments, prompts,
one engine and one generate call per chunk for both prompts, result order, per-item and whole-call
errors (bisected), batch-invariant mode, missing vllm / GPU."""
from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass, field

import pyarrow.parquet as pq
import pytest
from PIL import Image

from viral.caption.backend import CaptionRequest, sampling_from
from viral.caption.run import run_caption
from viral.caption.vllm_backend import VllmCaptioner, vllm_engine
from viral.stage import StageError


@dataclass
class Completion:
    text: str
    token_ids: list
    finish_reason: str


@dataclass
class RequestOutput:
    prompt_token_ids: list
    outputs: list = field(default_factory=list)


class FakeLLM:
    """Answers each prompt with text derived from it, so a reordering would show."""

    def __init__(self, engine: dict, sampling: dict, env: dict, finish_reason: str = "stop"):
        self.engine, self.sampling, self.env = engine, sampling, env
        self.calls: list[list[dict]] = []
        self.finish_reason = finish_reason

    def generate(self, prompts, sampling_params, use_tqdm=True):
        assert sampling_params is self.sampling
        self.calls.append(prompts)
        outputs = []
        for prompt in prompts:
            text = f" caption of {prompt['multi_modal_uuids']['image']} "
            completion = Completion(text, [1, 2, 3], self.finish_reason)
            outputs.append(RequestOutput(list(range(len(prompt["prompt"]))), [completion]))
        return outputs


def fake_factory(holder: list, **kwargs):
    def factory(engine: dict, sampling: dict, env: dict):
        llm = FakeLLM(engine, sampling, env, **kwargs)
        holder.append(llm)
        return llm, sampling

    return factory


def requests(n: int) -> list[CaptionRequest]:
    return [CaptionRequest(f"img{i}", f"Describe item {i}.", Image.new("RGB", (56 + 14 * i, 56))) for i in range(n)]


def test_engine_sampling_and_prompts(tiny_params):
    params = tiny_params(backend="vllm", max_pixels=50176, tensor_parallel_size=2, gpu_memory_utilization=0.8)
    holder: list = []
    captioner = VllmCaptioner(params.caption, sampling_from(params.caption, params.data_seed), fake_factory(holder))
    results = captioner.generate(requests(3))
    (llm,) = holder
    assert llm.engine == dict(
        model=params.caption.model, tensor_parallel_size=2, gpu_memory_utilization=0.8, max_model_len=4096,
        max_num_seqs=512, max_num_batched_tokens=16384, enable_prefix_caching=True,
        limit_mm_per_prompt={"image": 1, "video": 0}, seed=params.data_seed,
    )  # fmt: skip
    assert llm.env == {}  # batch-invariant mode is off by default
    assert llm.sampling == dict(max_tokens=6, temperature=0.0, repetition_penalty=1.05)  # greedy: no seed
    (prompts,) = llm.calls
    for i, prompt in enumerate(prompts):
        text = prompt["prompt"]
        assert text.count("<|image_pad|>") == 1
        assert text.index("<|vision_end|>") < text.index(f"Describe item {i}.")  # image before the instruction
        assert text.endswith("<|im_start|>assistant\n")
        assert prompt["multi_modal_data"]["image"].size == (56 + 14 * i, 56)
        assert prompt["multi_modal_uuids"] == {"image": f"img{i}"}
    assert [r.text for r in results] == ["caption of img0", "caption of img1", "caption of img2"]
    assert [(r.generated_tokens, r.finish_reason) for r in results] == [(3, "stop")] * 3
    assert results[0].prompt_tokens == len(prompts[0]["prompt"])


def test_sampling_passes_the_seed(tiny_params):
    params = tiny_params(backend="vllm", temperature=0.7)
    holder: list = []
    VllmCaptioner(params.caption, sampling_from(params.caption, 5), fake_factory(holder))
    assert holder[0].sampling == dict(max_tokens=6, temperature=0.7, repetition_penalty=1.05, seed=5)


def test_bad_outputs(tiny_params):
    params = tiny_params(backend="vllm")
    holder: list = []
    factory = fake_factory(holder, finish_reason="abort")
    captioner = VllmCaptioner(params.caption, sampling_from(params.caption, 0), factory)
    assert [r.error for r in captioner.generate(requests(2))] == ["vllm finish_reason='abort'"] * 2
    holder[0].generate = lambda prompts, sampling, use_tqdm: []
    assert [r.error for r in captioner.generate(requests(2))] == ["StageError: vllm returned 0 outputs for 1 prompts"] * 2
    holder[0].generate = lambda prompts, sampling, use_tqdm: [RequestOutput([1])]
    assert captioner.generate(requests(1))[0].error == "vllm returned no completion"


def test_a_request_that_breaks_the_call_fails_alone(tiny_params):
    params = tiny_params(backend="vllm")
    holder: list = []
    captioner = VllmCaptioner(params.caption, sampling_from(params.caption, 0), fake_factory(holder))
    real_generate = holder[0].generate

    def generate(prompts, sampling, use_tqdm):  # vLLM rejects a whole call when one prompt is invalid
        if any("item 1." in p["prompt"] for p in prompts):
            raise ValueError("prompt length 5000 exceeds max_model_len 4096")
        return real_generate(prompts, sampling, use_tqdm)

    holder[0].generate = generate
    results = captioner.generate(requests(3))
    assert [r.text for r in results] == ["caption of img0", "", "caption of img2"]
    assert results[1].error == "ValueError: prompt length 5000 exceeds max_model_len 4096"


def test_stage_runs_one_engine_for_both_prompts_and_one_generate_call_per_chunk(dataset, tiny_params):
    params = tiny_params(backend="vllm", shard_items=6)
    holder: list = []

    def make(config, seed):
        return VllmCaptioner(config, sampling_from(config, seed), fake_factory(holder))

    reports = run_caption(params, make=make)
    (llm,) = holder  # one engine for title and plain
    assert [len(call) for call in llm.calls] == [6, 6, 4]  # 8 images x 2 prompts in chunks of 6
    prompts = [prompt for call in llm.calls for prompt in call]
    for title, plain in zip(prompts[::2], prompts[1::2]):  # an image's two requests side by side
        assert title["multi_modal_uuids"] == plain["multi_modal_uuids"]
        assert "Soft baby blanket number" in title["prompt"] and "Soft baby blanket" not in plain["prompt"]
    for prompt in ("title", "plain"):
        rows = pq.read_table(f"data/captions/synthetic/{prompt}.parquet").to_pylist()
        ok = [row for row in rows if row["status"] == "ok"]
        assert [row["itemID"] for row in ok] == [0, 1, 2, 4, 5, 6, 8, 9]
        assert all(row["description"].startswith("caption of ") and row["backend"] == "vllm" for row in ok)
        assert len({row["description"] for row in ok}) == len(ok) == reports[prompt]["captioned"]


def test_batch_invariant_mode_reaches_the_engine_environment(tiny_params, monkeypatch):
    params = tiny_params(backend="vllm", batch_invariant=True)
    holder: list = []
    VllmCaptioner(params.caption, sampling_from(params.caption, 0), fake_factory(holder))
    assert holder[0].env == {"VLLM_BATCH_INVARIANT": "1"}

    seen = {}
    fake = types.ModuleType("vllm")
    fake.LLM = lambda **kwargs: seen.setdefault("env", os.environ.get("VLLM_BATCH_INVARIANT"))
    fake.SamplingParams = lambda **kwargs: kwargs
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.delenv("VLLM_BATCH_INVARIANT", raising=False)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    vllm_engine({"model": "m"}, {}, {"VLLM_BATCH_INVARIANT": "1"})
    assert seen["env"] == "1"  # set before the engine starts
    monkeypatch.delenv("VLLM_BATCH_INVARIANT")


def test_missing_vllm_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(StageError, match=r"needs the vllm package .*pip install 'viral\[vlm\]'"):
        vllm_engine({}, {}, {})


def test_missing_gpu_is_one_line(monkeypatch):
    import torch

    fake = types.ModuleType("vllm")
    fake.LLM = fake.SamplingParams = lambda **kwargs: pytest.fail("must not start an engine without a GPU")
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(StageError, match="needs a CUDA GPU"):
        vllm_engine({}, {}, {})
