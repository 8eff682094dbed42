"""Product pictures of the synthetic catalogue: a shape per product type, filled with the item's colour
and pattern, on a cluttered background (props, stickers, a floor) like real marketing photos.

`plan_scene` draws everything random about a picture; `render` is a pure function of the item's look
and its scene, so the layout can be inspected (and tested) apart from the pixels.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from viral.data.synthetic_world import COLOURS, TYPES

RGB = {
    "red": (200, 35, 45),
    "orange": (240, 130, 25),
    "yellow": (240, 205, 40),
    "green": (45, 150, 60),
    "teal": (20, 150, 150),
    "blue": (40, 80, 205),
    "purple": (120, 55, 165),
    "pink": (240, 125, 175),
}
BACKGROUNDS = ((246, 245, 240), (236, 232, 224), (226, 231, 236), (250, 247, 242), (232, 236, 228))
OUTLINE = (45, 40, 40)
SUPERSAMPLE = 2  # draw at twice the size, then downsample: smooth edges
JPEG_QUALITY = 90

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the canvas


@dataclass(frozen=True)
class Prop:
    kind: str  # a product type (a small distracting object) or "sticker" / "ring" / "block"
    colour: str
    box: Box


@dataclass(frozen=True)
class Scene:
    background: tuple[int, int, int]
    floor: float  # height of the table band, fraction of the canvas
    props: tuple[Prop, ...]
    box: Box  # where the product is drawn
    shade: tuple[int, int, int]  # small per-item shift of the fill colour
    period: float  # pattern period, fraction of the product box
    angle: float  # stripe angle, radians
    badge: bool  # a dark "text" label in a corner, as on marketing shots

    @property
    def clutter_colours(self) -> list[str]:
        return [prop.colour for prop in self.props]

    @property
    def prop_types(self) -> list[str]:
        return [prop.kind for prop in self.props if prop.kind in TYPES]


def plan_scene(colour: str, kind: str, rng: np.random.Generator) -> Scene:
    """Random layout of one picture; distractors never share the product's colour or type."""
    other_colours = [c for c in COLOURS if c != colour]
    other_types = [t for t in TYPES if t != kind]
    props = []
    for _ in range(int(rng.integers(2, 6))):
        size = float(rng.uniform(0.12, 0.24))
        x0, y0 = (float(v) for v in rng.uniform(0.0, 1.0 - size, size=2))
        if rng.random() < 0.35:
            shape = str(rng.choice(other_types))
        else:
            shape = str(rng.choice(PROP_SHAPES))
        props.append(Prop(shape, str(rng.choice(other_colours)), (x0, y0, x0 + size, y0 + size)))
    size = float(rng.uniform(0.55, 0.72))
    x0 = float(rng.uniform(0.06, 0.94 - size))
    y0 = float(rng.uniform(0.06, 0.94 - size))
    return Scene(
        background=BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))],
        floor=float(rng.uniform(0.15, 0.35)),
        props=tuple(props),
        box=(x0, y0, x0 + size, y0 + size),
        shade=tuple(int(v) for v in rng.integers(-18, 19, size=3)),
        period=float(rng.uniform(0.14, 0.22)),
        angle=float(rng.choice([0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4])),
        badge=bool(rng.random() < 0.4),
    )


def _at(box: tuple[float, float, float, float], u0: float, v0: float, u1: float, v1: float) -> list[float]:
    """The sub-box (u0, v0)-(u1, v1), in unit coordinates of `box`, in pixels."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    return [x0 + u0 * w, y0 + v0 * h, x0 + u1 * w, y0 + v1 * h]


def _points(box, points) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = box
    return [(x0 + u * (x1 - x0), y0 + v * (y1 - y0)) for u, v in points]


# Each silhouette: primitives in unit coordinates of its box, drawn in order ("hole" cuts out).
SHAPES: dict[str, list[tuple]] = {
    "bottle": [("ellipse", (0.41, 0.0, 0.59, 0.2)), ("rect", (0.36, 0.12, 0.64, 0.32)),
               ("rounded", (0.24, 0.28, 0.76, 1.0))],
    "cup": [("ellipse", (0.6, 0.28, 0.96, 0.76)), ("hole", (0.69, 0.38, 0.87, 0.66)),
            ("polygon", ((0.1, 0.12), (0.74, 0.12), (0.67, 0.96), (0.17, 0.96)))],
    "bowl": [("lower_half", (0.0, 0.0, 1.0, 0.9)), ("rect", (0.34, 0.86, 0.66, 0.95))],
    "bib": [("rect", (0.2, 0.0, 0.3, 0.35)), ("rect", (0.7, 0.0, 0.8, 0.35)), ("ellipse", (0.08, 0.18, 0.92, 1.0)),
            ("hole", (0.34, 0.08, 0.66, 0.4))],
    "hat": [("ellipse", (0.42, 0.06, 0.58, 0.22)), ("upper_half", (0.14, 0.16, 0.86, 0.96)),
            ("rounded", (0.02, 0.52, 0.98, 0.68))],
    "sock": [("polygon", ((0.28, 0.0), (0.6, 0.0), (0.6, 0.58), (0.88, 0.7), (0.88, 0.97), (0.28, 0.97))),
             ("ellipse", (0.72, 0.68, 1.0, 0.98)), ("ellipse", (0.16, 0.7, 0.44, 0.98))],
    "ball": [("ellipse", (0.08, 0.08, 0.92, 0.92))],
    "backpack": [("ellipse", (0.34, 0.0, 0.66, 0.3)), ("hole", (0.42, 0.07, 0.58, 0.23)),
                 ("rounded", (0.14, 0.18, 0.86, 1.0))],
    "sticker": [("ellipse", (0.0, 0.0, 1.0, 1.0))],
    "ring": [("ellipse", (0.0, 0.0, 1.0, 1.0)), ("hole", (0.3, 0.3, 0.7, 0.7))],
    "block": [("rect", (0.1, 0.1, 0.9, 0.9))],
}
PROP_SHAPES = ("sticker", "ring", "block")


def draw_shape(draw: ImageDraw.ImageDraw, kind: str, box, fill, hole=0) -> None:
    """The silhouette of `kind` (a product type or a prop shape) in pixel box `box`."""
    for primitive, unit in SHAPES[kind]:
        if primitive == "polygon":
            draw.polygon(_points(box, unit), fill=fill)
            continue
        pixels = _at(box, *unit)
        if primitive == "ellipse":
            draw.ellipse(pixels, fill=fill)
        elif primitive == "hole":
            draw.ellipse(pixels, fill=hole)
        elif primitive == "rect":
            draw.rectangle(pixels, fill=fill)
        elif primitive == "rounded":
            draw.rounded_rectangle(pixels, radius=(pixels[2] - pixels[0]) * 0.14, fill=fill)
        elif primitive == "lower_half":
            draw.chord(pixels, 0, 180, fill=fill)
        elif primitive == "upper_half":
            draw.pieslice(pixels, 180, 360, fill=fill)
        else:
            raise ValueError(f"unknown primitive {primitive!r} in the shape of {kind!r}")


def _pattern_fill(pattern: str, colour: str, scene: Scene, size: int, box) -> Image.Image:
    """A canvas-sized fill: the base colour with the pattern in a lighter (or darker) tone, softly shaded."""
    base = np.clip(np.array(RGB[colour]) + np.array(scene.shade), 0, 255).astype(np.float32)
    # light colours get a darker second tone, dark ones a lighter one, so the pattern shows either way
    second = base * 0.55 if base.mean() > 150 else base * 0.3 + 255 * 0.7
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    period = scene.period * (box[2] - box[0])
    if pattern == "stripes":
        along = x * np.cos(scene.angle) + y * np.sin(scene.angle)
        marked = (along % period) < period * 0.45
    elif pattern == "dots":
        dx = (x - box[0]) % period - period / 2
        dy = (y - box[1]) % period - period / 2
        marked = dx * dx + dy * dy < (period * 0.28) ** 2
    elif pattern == "checks":
        cell = period * 0.75
        marked = (np.floor((x - box[0]) / cell) + np.floor((y - box[1]) / cell)) % 2 == 1
    elif pattern == "plain":
        marked = np.zeros_like(x, dtype=bool)
    else:
        raise ValueError(f"no pattern {pattern!r}")
    pixels = np.where(marked[..., None], second, base)
    light = 1.08 - 0.2 * np.clip((y - box[1]) / max(box[3] - box[1], 1.0), 0.0, 1.0)
    return Image.fromarray(np.clip(pixels * light[..., None], 0, 255).astype(np.uint8), "RGB")


def _scaled(box: Box, size: int) -> list[float]:
    return [v * size for v in box]


def render(kind: str, colour: str, pattern: str, scene: Scene, size: int) -> Image.Image:
    """The product picture (RGB, `size` x `size`)."""
    big = size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), scene.background)
    draw = ImageDraw.Draw(canvas)
    floor_tone = tuple(int(v * 0.9) for v in scene.background)
    draw.rectangle([0, big * (1 - scene.floor), big, big], fill=floor_tone)
    for prop in scene.props:
        draw_shape(draw, prop.kind, _scaled(prop.box, big), fill=RGB[prop.colour], hole=scene.background)
    if scene.badge:
        draw.rectangle([big * 0.03, big * 0.03, big * 0.33, big * 0.13], fill=OUTLINE)
        for row in (0.06, 0.095):
            draw.line([big * 0.06, big * row, big * 0.3, big * row], fill=(240, 240, 240), width=max(1, big // 90))
    box = _scaled(scene.box, big)
    mask = Image.new("L", (big, big), 0)
    draw_shape(ImageDraw.Draw(mask), kind, box, fill=255, hole=0)
    canvas.paste(_pattern_fill(pattern, colour, scene, big, box), mask=mask)
    edge = mask.filter(ImageFilter.FIND_EDGES).filter(ImageFilter.MaxFilter(3))
    canvas.paste(OUTLINE, mask=edge)
    return canvas.resize((size, size), Image.Resampling.LANCZOS)


def jpeg_bytes(image: Image.Image) -> bytes:
    """Deterministic JPEG encoding (no metadata, fixed quality)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)
    return buffer.getvalue()
