"""transformers backend on the tiny Qwen2.5-VL: batching is invisible (left padding, order), token
accounting matches the processor, one broken request fails alone (bisected), the processor keeps our grid."""
from __future__ import annotations

import pytest
from PIL import Image

from viral.caption.backend import CaptionRequest, Sampling
from viral.caption.hf_backend import TransformersCaptioner
from viral.stage import StageError

SIZES = [(112, 112), (56, 56), (84, 56), (56, 140), (168, 56)]  # 16, 4, 6, 10, 12 visual tokens


def requests() -> list[CaptionRequest]:
    return [
        CaptionRequest(str(i), f"Product title: item {i}. Describe it.", Image.new("RGB", size, (40 * i, 90, 20 * i)))
        for i, size in enumerate(SIZES)
    ]


@pytest.fixture(scope="module")
def captioners(tiny_model):
    sampling = Sampling(max_new_tokens=8, temperature=0.0, repetition_penalty=1.05, seed=0)
    batched = TransformersCaptioner(str(tiny_model), sampling, batch_size=4, device="cpu")
    single = TransformersCaptioner(str(tiny_model), sampling, batch_size=1, device="cpu")
    return batched, single


def test_batched_equals_one_at_a_time_in_request_order(captioners):
    batched, single = captioners
    together = batched.generate(requests())
    alone = single.generate(requests())
    assert together == alone
    assert all(g.text and g.error is None for g in together)
    # Every image has its own visual-token count, so a result given to the wrong request would show.
    assert len({g.prompt_tokens for g in together}) == len(SIZES)
    assert [single.generate([r])[0] for r in requests()[::-1]] == alone[::-1]


def test_token_accounting(captioners):
    batched, _ = captioners
    from viral.caption.prompts import render_chat

    results = batched.generate(requests())
    for request, generation in zip(requests(), results):
        text = render_chat(batched.processor, request.text)
        inputs = batched.processor(text=[text], images=[request.image], return_tensors="pt")
        assert generation.prompt_tokens == inputs["input_ids"].shape[1]  # padding is not counted
        assert 1 <= generation.generated_tokens <= 8
        assert (generation.finish_reason == "length") == (generation.generated_tokens == 8)


def test_a_broken_request_fails_alone(captioners):
    batched, _ = captioners
    items = requests()
    # Qwen's processor rejects aspect ratios above 200: the batch fails and is bisected down to the item.
    items[2] = CaptionRequest("bad", "x", Image.new("RGB", (28 * 250, 28)))
    results = batched.generate(items)
    assert results[2].error and "ValueError" in results[2].error and results[2].finish_reason == "error"
    good = batched.generate([r for i, r in enumerate(requests()) if i != 2])
    assert [r for i, r in enumerate(results) if i != 2] == good


def test_unloadable_model_is_one_line(tmp_path):
    with pytest.raises(StageError, match=r"caption.model '.*nothing': cannot load its processor \(OSError"):
        TransformersCaptioner(str(tmp_path / "nothing"), Sampling(4, 0.0, 1.0, 0), device="cpu")


def test_missing_gpu_is_one_line(tiny_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(StageError, match="no CUDA GPU is visible"):
        TransformersCaptioner(str(tiny_model), Sampling(4, 0.0, 1.0, 0), device="cuda")


def test_an_image_the_processor_would_resize_fails_with_the_reason(captioners):
    batched, _ = captioners
    off_grid = CaptionRequest("odd", "Describe it.", Image.new("RGB", (100, 70)))  # not multiples of 28
    (result,) = batched.generate([off_grid])
    assert result.finish_reason == "error"
    assert "the model's processor resized a 100x70 image to 112x56" in result.error
