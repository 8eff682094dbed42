"""Reading an MMRec data folder (`<name>.inter`, id maps, feature files)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

SPLIT_COLUMN = "x_label"


def read_inter(path: str | Path) -> pd.DataFrame:
    """An MMRec `.inter` file as a frame `userID, itemID, split` (int64, int64, int8)."""
    path = Path(path)
    frame = pd.read_csv(path, sep="\t", usecols=["userID", "itemID", SPLIT_COLUMN])
    frame = frame.rename(columns={SPLIT_COLUMN: "split"})
    return frame.astype({"userID": "int64", "itemID": "int64", "split": "int8"})
