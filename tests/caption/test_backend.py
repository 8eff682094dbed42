"""Shared backend pieces: image preparation, sampling key, config validation."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from viral.caption.backend import Sampling, make_captioner, prepare_image
from viral.caption.config import CaptionConfig
from viral.config import ConfigError, build
from viral.stage import StageError


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_prepare_image_downscales_to_the_pixel_cap_keeping_aspect():
    image = prepare_image(encoded(Image.new("RGBA", (400, 100))), max_pixels=10_000)
    assert image.mode == "RGB" and image.width * image.height <= 10_000
    assert image.size == (200, 50)
    assert prepare_image(encoded(Image.new("L", (30, 20))), max_pixels=10_000).size == (30, 20)  # never upscaled


def test_prepare_image_rejects_garbage():
    with pytest.raises(OSError):
        prepare_image(b"not an image", max_pixels=10_000)


def test_sampling_key_ignores_the_seed_only_when_greedy():
    assert "seed" not in Sampling(8, 0.0, 1.05, seed=1).key()
    assert Sampling(8, 0.7, 1.05, seed=1).key() != Sampling(8, 0.7, 1.05, seed=2).key()


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"temperature": -0.1}, "caption.temperature: expected >= 0 (0 = greedy), got -0.1"),
        ({"batch_size": 0}, "caption.batch_size: expected >= 1, got 0"),
        ({"gpu_memory_utilization": 1.5}, "caption.gpu_memory_utilization: expected > 0 and <= 1, got 1.5"),
        ({"max_pixels": 100}, "caption.max_pixels: expected >= 784 (one 28x28 visual token), got 100"),
        ({"prompts": []}, "caption: prompts: expected at least one"),
        ({"prompts": ["fancy"]}, "caption.prompts[0]: got 'fancy', expected one of title, plain"),
    ],
)
def test_bad_caption_params(raw, expected):
    with pytest.raises(ConfigError) as err:
        build(CaptionConfig, raw, "caption")
    assert expected in str(err.value)


def test_precomputed_has_no_model():
    with pytest.raises(StageError, match="precomputed imports descriptions"):
        make_captioner(CaptionConfig(), seed=0)
