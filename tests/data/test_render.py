"""The product pictures: one distinct silhouette per type, the planted colour and pattern, reproducible."""
import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw

from viral.data.render import RGB, SHAPES, draw_shape, jpeg_bytes, plan_scene, render
from viral.data.synthetic_world import COLOURS, PATTERNS, TYPES


def _mask(kind: str, size: int = 64) -> np.ndarray:
    mask = Image.new("L", (size, size), 0)
    draw_box = [0, 0, size - 1, size - 1]
    draw_shape(ImageDraw.Draw(mask), kind, draw_box, fill=255, hole=0)
    return np.asarray(mask) > 0


def test_every_colour_and_type_can_be_drawn():
    assert tuple(RGB) == COLOURS
    assert set(TYPES) <= set(SHAPES)


def test_silhouettes_are_distinct():
    masks = {kind: _mask(kind) for kind in TYPES}
    for kind, mask in masks.items():
        assert 0.2 < mask.mean() < 0.9, kind
    for a, b in itertools.combinations(TYPES, 2):
        overlap = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
        assert overlap < 0.85, (a, b, overlap)


def test_scene_keeps_distractors_off_the_product_colour_and_type():
    rng = np.random.default_rng(0)
    for _ in range(50):
        scene = plan_scene("red", "cup", rng)
        assert "red" not in scene.clutter_colours and "cup" not in scene.prop_types
        assert 2 <= len(scene.props) <= 5
        x0, y0, x1, y1 = scene.box
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


@pytest.mark.parametrize("pattern", PATTERNS)
def test_pattern_shows_inside_the_product(pattern):
    scene = plan_scene("blue", "ball", np.random.default_rng(1))
    picture = np.asarray(render("ball", "blue", pattern, scene, 96), dtype=np.float64)
    x0, y0, x1, y1 = (int(v * 96) for v in scene.box)
    inner = picture[y0 + (y1 - y0) // 3: y1 - (y1 - y0) // 3, x0 + (x1 - x0) // 3: x1 - (x1 - x0) // 3]
    tones = inner.reshape(-1, 3).std(axis=0).mean()
    # plain is one shaded tone; stripes, dots and checks alternate two tones
    assert (tones < 12) if pattern == "plain" else (tones > 20)


def test_render_is_reproducible():
    scene = plan_scene("green", "sock", np.random.default_rng(5))
    first = jpeg_bytes(render("sock", "green", "checks", scene, 64))
    assert first == jpeg_bytes(render("sock", "green", "checks", scene, 64))
    assert first[:2] == b"\xff\xd8"
    other = plan_scene("green", "sock", np.random.default_rng(6))
    assert first != jpeg_bytes(render("sock", "green", "checks", other, 64))
