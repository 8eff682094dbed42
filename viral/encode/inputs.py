"""Reading the encode stage's inputs: prepared items and caption tables, with one-line errors."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from viral.stage import StageError

OK_STATUS = "ok"


def read_columns(path: str | Path, columns: Sequence[str], what: str) -> dict[str, list[Any]]:
    """`columns` of a Parquet file as python lists; a missing file or column is a StageError."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise StageError(f"{path}: {what} not found")
    have = pq.read_schema(path).names
    missing = [name for name in columns if name not in have]
    if missing:
        raise StageError(f"{path}: {what} lacks column(s) {', '.join(missing)} (has {', '.join(have)})")
    return pq.read_table(path, columns=list(columns)).to_pydict()


def read_descriptions(path: str | Path) -> tuple[list[int], list[str], int]:
    """(itemIDs, descriptions) of the usable rows of a caption table, plus the count of unusable rows.

    A row is usable when its status is "ok" and its description is not blank; the others (and items
    without a row) are left for mean imputation.
    """
    columns = read_columns(path, ("itemID", "description", "status"), "caption table (run the caption stage)")
    ids, texts = [], []
    for item_id, text, status in zip(columns["itemID"], columns["description"], columns["status"]):
        if status == OK_STATUS and text and text.strip():
            ids.append(item_id)
            texts.append(text)
    return ids, texts, len(columns["itemID"]) - len(ids)
