"""Your own dataset: a folder with an interactions file and an items file (`source: custom`).

- interactions (CSV, TSV, Parquet or JSON lines): one row per interaction with a user id, an item id
  and optionally a rating and a timestamp (integer seconds or milliseconds; needed by the
  `last_out` and `timestamp` splits). Repeated (user, item) pairs keep the first, as for Amazon.
- items: one row per item with the item id, a title and optionally a brand, categories (a list, or
  text split at `categories_separator`), a description and an image (an http(s) URL, or a path
  relative to the folder). Every item of the interactions must be in it; items never interacted
  with are ignored.
Column names are set in the registry entry (`columns:`). Every problem stops with one line naming
the file, the row and the field.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from viral.data.datasets import CustomDataset
from viral.data.prepared import TEXT_FIELDS, empty_items
from viral.data.tables import TableColumns, TableError, read_table_columns

# prepared items column -> CustomColumns field naming it in the file
TEXT_COLUMNS = {"title": "title", "brand": "brand", "description": "description", "imUrl": "image"}


def _item_id(value: Any, where: str, name: str) -> str:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TableError(f"{where}: field {name!r}: expected an item id (text or integer), got {value!r:.60}")


def _text(value: Any, where: str, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise TableError(f"{where}: field {name!r}: expected text, got {value!r:.60}")


def _categories(value: Any, separator: str, where: str, name: str) -> list[list[str]]:
    """A list of category paths from text ("Baby|Toys"), a list of names, or a list of lists."""
    if value is None:
        return []
    if isinstance(value, str):
        path = [part.strip() for part in value.split(separator) if part.strip()]
        return [path] if path else []
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return [value] if value else []
    if isinstance(value, list) and all(isinstance(path, list) and all(isinstance(part, str) for part in path)
                                       for path in value):
        return [path for path in value if path]
    raise TableError(f"{where}: field {name!r}: expected text, a list of names or a list of lists of names, "
                     f"got {value!r:.60}")


def read_items(path: str | Path, settings: CustomDataset, where: str) -> pd.DataFrame:
    """The items file as `asin (the item id as text), title, brand, description, categories, imUrl`,
    indexed by asin; a duplicate id, a missing column or a mistyped cell is a one-line error. `where`
    is the params key of the column names (for messages)."""
    columns = settings.columns
    required = {f"{where}.item": columns.item, f"{where}.title": columns.title}
    optional = {f"{where}.{field}": getattr(columns, field) for field in ("brand", "description", "image",
                                                                          "categories")}
    table: TableColumns = read_table_columns(path, required, optional)
    values = table.values
    asins, first_row = [], {}
    for row, value in enumerate(values[f"{where}.item"]):
        asin = _item_id(value, table.where(row), columns.item)
        if asin in first_row:
            raise TableError(f"{table.where(row)}: field {columns.item!r}: item {asin!r} appears twice "
                             f"(first at row {table.positions[first_row[asin]]})")
        first_row[asin] = row
        asins.append(asin)
    frame = empty_items(pd.Series(asins, dtype=object))
    for out, field in TEXT_COLUMNS.items():
        key = f"{where}.{field}"
        if key in values:
            name = getattr(columns, field)
            frame[out] = [_text(value, table.where(row), name) for row, value in enumerate(values[key])]
    key = f"{where}.categories"
    if key in values:
        frame["categories"] = [_categories(value, settings.categories_separator, table.where(row), columns.categories)
                               for row, value in enumerate(values[key])]
    return frame.drop(columns="itemID").set_index("asin", drop=False)


def items_for(asins: pd.Series, catalogue: pd.DataFrame) -> pd.DataFrame:
    """The prepared items frame of `asins` (row i = itemID i), every field taken from `catalogue`."""
    items = catalogue.loc[asins.to_numpy()].reset_index(drop=True)
    items.insert(0, "itemID", range(len(items)))
    for name in TEXT_FIELDS:
        items[name] = items[name].astype(str)
    return items
