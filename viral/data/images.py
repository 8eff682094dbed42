"""The images stage: fetch each kept item's image into Parquet shards (readers live in image_store)."""
from __future__ import annotations

from viral.data.image_store import load_image_status, load_images

__all__ = ["load_images", "load_image_status"]
