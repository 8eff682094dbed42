"""One image size for every backend: decode, then resize once onto Qwen2.5-VL's patch grid ourselves.

Qwen2.5-VL cuts an image into 14x14 patches and merges 2x2 of them into one visual token, so its
processor first resizes every image to sides that are multiples of 28, within [min_pixels, max_pixels]
and keeping the aspect ratio as closely as it can ("smart resize"); images more elongated than 200:1
are rejected. Each backend configures that processor differently (the model folder's own limits, or
vLLM's `mm_processor_kwargs`, which some vLLM versions ignore for Qwen2.5-VL), so the same photo used
to become a different number of visual tokens on different backends. Here the image is resized to the
grid *before* any processor sees it: an image already on the grid and within the processor's limits is
left as it is, so transformers, vLLM and the Ray paths all see these exact pixels and token counts.
"""
from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

PATCH = 14  # vision patch side, pixels
MERGE = 2  # patches merged per side into one visual token
FACTOR = PATCH * MERGE  # image sides are multiples of this
MIN_PIXELS = 56 * 56  # Qwen2.5-VL's own lower limit; smaller images are enlarged to it
MAX_ASPECT_RATIO = 200  # Qwen2.5-VL rejects images more elongated than this
# Part of the caption cache key: changing how images are sized must re-caption them.
GEOMETRY = f"qwen2.5-vl-grid/factor={FACTOR}/min={MIN_PIXELS}/aspect<={MAX_ASPECT_RATIO}/bicubic"


class ImageGeometryError(ValueError):
    """An image the model cannot take (too elongated); fails that item only."""


def grid_size(width: int, height: int, max_pixels: int, min_pixels: int = MIN_PIXELS) -> tuple[int, int]:
    """(width, height) on the grid: sides multiples of FACTOR, area in [min_pixels, max_pixels], aspect kept.

    Round each side to the nearest multiple; if that overshoots `max_pixels`, scale down by the area
    ratio and round down; if it undershoots `min_pixels`, scale up and round up. This is Qwen2.5-VL's
    own rule, so the pixels are those of the model's reference preprocessing (a side that rounds to 0,
    e.g. 14 pixels, goes through the enlarging branch: 2800x14 becomes 812x28, as in the reference).
    """
    if width < 1 or height < 1:
        raise ImageGeometryError(f"image of {width}x{height} pixels has no area")
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT_RATIO:
        raise ImageGeometryError(
            f"image of {width}x{height} pixels has aspect ratio {ratio:.0f}:1; Qwen2.5-VL takes at most "
            f"{MAX_ASPECT_RATIO}:1"
        )
    # Python's round (half to even), as Qwen's processor does: the exact same sizes as the reference.
    new_w = round(width / FACTOR) * FACTOR
    new_h = round(height / FACTOR) * FACTOR
    if new_w * new_h > max_pixels:
        shrink = math.sqrt(width * height / max_pixels)
        new_w = max(FACTOR, math.floor(width / shrink / FACTOR) * FACTOR)
        new_h = max(FACTOR, math.floor(height / shrink / FACTOR) * FACTOR)
    elif new_w * new_h < min_pixels:
        grow = math.sqrt(min_pixels / (width * height))
        new_w = math.ceil(width * grow / FACTOR) * FACTOR
        new_h = math.ceil(height * grow / FACTOR) * FACTOR
    return new_w, new_h


def visual_tokens(width: int, height: int) -> int:
    """Visual tokens of an image already on the grid (one per 28x28 block)."""
    return (width // FACTOR) * (height // FACTOR)


def prepare_image(data: bytes, max_pixels: int) -> "Image.Image":
    """Decode image bytes to RGB and resize them once, bicubic, onto the grid (see `grid_size`).

    Raises OSError-family errors for undecodable bytes and ImageGeometryError for shapes the model
    rejects; the caller turns either into a failure of that item only.
    """
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image = image.convert("RGB")
    size = grid_size(image.width, image.height, max_pixels)
    if size != image.size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    return image


def image_from_pixels(pixels: bytes, width: int, height: int) -> "Image.Image":
    """Rebuild a prepared image from its raw RGB bytes (how Ray moves prepared images between workers)."""
    from PIL import Image

    return Image.frombytes("RGB", (width, height), pixels)
