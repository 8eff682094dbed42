"""One image size for every backend: our grid resize against hand-computed sizes and Qwen's own processor,
and the same pixels and visual-token counts on the transformers and the vLLM prompt paths."""
from __future__ import annotations

import io
import random
from dataclasses import replace

import pytest
from PIL import Image

from viral.caption.backend import CaptionRequest, sampling_from
from viral.caption.geometry import (
    FACTOR,
    ImageGeometryError,
    grid_size,
    image_from_pixels,
    prepare_image,
    visual_tokens,
)

DEFAULT_MAX_PIXELS = 1280 * 28 * 28
# Catalogue-like shapes: square photos, portrait/landscape, panoramas, thumbnails, huge scans, odd sizes.
SHAPES = [(1000, 1000), (500, 500), (1500, 1500), (4000, 3000), (3000, 4000), (640, 480), (1200, 300),
          (300, 1200), (2000, 100), (100, 2000), (57, 57), (28, 28), (10, 10), (30, 20), (5000, 200), (999, 1001),
          (1024, 768), (333, 777), (1920, 1080), (2800, 14)]  # fmt: skip


def encoded(size: tuple[int, int], mode: str = "RGB", fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "orange" if mode == "RGB" else 128).save(buffer, format=fmt)
    return buffer.getvalue()


def test_hand_computed_sizes():
    # 1000x1000 rounds to 1008x1008 = 1,016,064 > 1,003,520 pixels, so it is scaled by sqrt(1e6 / 1,003,520)
    # and rounded down: 1000 / 0.99825 / 28 = 35.78 -> 35 blocks -> 980 pixels. 35 x 35 = 1225 visual tokens.
    assert grid_size(1000, 1000, DEFAULT_MAX_PIXELS) == (980, 980)
    assert visual_tokens(980, 980) == 1225
    # 400x100 under a 10,000 pixel cap: halve both sides (40,000 / 10,000 = 4), 200 / 28 -> 7 blocks, 50 / 28 -> 1.
    assert grid_size(400, 100, 10_000) == (196, 28)
    # 30x20 (600 pixels) is enlarged to Qwen's 3136-pixel minimum: x2.286 -> ceil(2.45) = 3, ceil(1.63) = 2 blocks.
    assert grid_size(30, 20, 10_000) == (84, 56)
    assert grid_size(56, 84, 10_000) == (56, 84)  # already on the grid: unchanged


def test_sizes_are_on_the_grid_within_the_cap_and_keep_the_aspect():
    rng = random.Random(0)
    shapes = SHAPES + [(rng.randint(20, 6000), rng.randint(20, 6000)) for _ in range(300)]
    for width, height in shapes:
        if max(width, height) / min(width, height) > 200:
            continue
        new_w, new_h = grid_size(width, height, DEFAULT_MAX_PIXELS)
        assert new_w % FACTOR == 0 and new_h % FACTOR == 0
        assert 56 * 56 <= new_w * new_h <= DEFAULT_MAX_PIXELS
        if min(width, height) >= FACTOR:  # thinner sides round to 0 and take Qwen's enlarging branch
            # Rounding each side to whole blocks distorts the aspect by at most about a block per short side.
            distortion = abs((new_w / new_h) / (width / height) - 1)
            assert distortion <= 2 * FACTOR / min(new_w, new_h), (width, height, new_w, new_h)


def test_matches_qwens_own_smart_resize():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    rng = random.Random(1)
    for width, height in SHAPES + [(rng.randint(1, 5000), rng.randint(1, 5000)) for _ in range(200)]:
        if max(width, height) / min(width, height) > 200:
            continue
        for cap in (DEFAULT_MAX_PIXELS, 16 * 28 * 28, 12845056):
            height_ref, width_ref = smart_resize(height, width, min_pixels=56 * 56, max_pixels=cap)
            assert grid_size(width, height, cap) == (width_ref, height_ref), (width, height, cap)


def test_too_elongated_images_fail_with_one_clear_line():
    with pytest.raises(ImageGeometryError, match=r"image of 7000x28 pixels has aspect ratio 250:1; .* at most 200:1"):
        prepare_image(encoded((7000, 28)), DEFAULT_MAX_PIXELS)


def test_prepare_image_decodes_to_rgb_on_the_grid():
    image = prepare_image(encoded((1000, 1000), "L", "JPEG"), DEFAULT_MAX_PIXELS)
    assert image.mode == "RGB" and image.size == (980, 980)
    assert image_from_pixels(image.tobytes(), *image.size).tobytes() == image.tobytes()  # Ray's transport
    with pytest.raises(OSError):
        prepare_image(b"not an image", DEFAULT_MAX_PIXELS)


def test_transformers_and_vllm_paths_see_the_same_pixels_and_token_counts(tiny_params):
    """Every shape: our resize, what the transformers backend's processor makes of it, and what the vLLM
    backend hands vLLM (which runs the model's own image processor on it, with or without
    mm_processor_kwargs being honoured: an image on the grid comes out the same either way)."""
    from viral.caption.hf_backend import TransformersCaptioner
    from viral.caption.prompts import render_chat
    from viral.caption.vllm_backend import VllmCaptioner

    config = replace(tiny_params().caption, backend="vllm", max_pixels=DEFAULT_MAX_PIXELS)
    sampling = sampling_from(config, 0)
    transformers = TransformersCaptioner(config.model, sampling, device="cpu")
    engines: list[dict] = []
    vllm = VllmCaptioner(config, sampling, lambda engine, params, env: (engines.append(engine), params))
    assert "mm_processor_kwargs" not in engines[0]  # nothing relies on vLLM honouring it
    pad = transformers.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for shape in SHAPES:  # all within 200:1 ((2800, 14) is exactly at the limit)
        image = prepare_image(encoded(shape), DEFAULT_MAX_PIXELS)
        tokens = visual_tokens(*image.size)
        request = CaptionRequest("img", "Describe this product.", image)

        text = render_chat(transformers.processor, request.text)
        inputs = transformers.processor(text=[text], images=[image], return_tensors="pt")
        frames, rows, cols = inputs["image_grid_thw"][0].tolist()
        assert (cols * 14, rows * 14) == image.size, shape  # the processor did not resize again
        assert frames * rows * cols // 4 == tokens == int((inputs["input_ids"] == pad).sum()), shape

        prompt = vllm.prompt(request)
        sent = prompt["multi_modal_data"]["image"]
        assert sent.size == image.size and sent.tobytes() == image.tobytes(), shape
        assert prompt["prompt"].count("<|image_pad|>") == 1 and prompt["prompt"] == text
        for size in (None, {"shortest_edge": 56 * 56, "longest_edge": DEFAULT_MAX_PIXELS}):
            kwargs = {"size": size} if size else {}
            grid = vllm.processor.image_processor(images=[sent], return_tensors="pt", **kwargs)["image_grid_thw"]
            assert grid[0].tolist() == [frames, rows, cols], (shape, size)
