"""The `visual: original` features: the 2014 Amazon 4096-d CNN features of the dataset's items."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from viral.data.amazon import read_image_features


def cnn_features(path: str | Path, item_ids: Sequence[int], asins: Sequence[str]) -> tuple[list[int], np.ndarray]:
    """(itemIDs, float32 rows) of the items (given by itemID and asin) that have a record in the
    `image_features_<Cat>.b` file; the file is streamed and only those records are kept. When an asin
    occurs twice in the file, its first record wins."""
    item_of = dict(zip(asins, item_ids))
    found_asins, rows = read_image_features(path, item_of.keys())
    first = {}
    for position, asin in enumerate(found_asins):
        first.setdefault(asin, position)
    if len(first) < len(found_asins):
        rows = rows[list(first.values())]
    return [item_of[asin] for asin in first], rows
