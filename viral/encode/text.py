"""The item text that MMRec encodes (`preprocessing/3feat-encoder`), rebuilt from the prepared items.

MMRec's sentence is ``title + " " + brand + " " + (each string of the FIRST category path followed by
" ") + description``, with every newline replaced by a space. MMRec fills missing fields with " ";
we use "" (items.parquet cannot tell missing from empty). The two differ only in whitespace, which the
BERT tokenizer discards, so the token ids and hence the embeddings are the same.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from viral.encode.inputs import read_columns

ITEM_TEXT_COLUMNS = ("itemID", "title", "brand", "categories", "description")


def item_text(title: str | None, brand: str | None, categories: Sequence[Sequence[str]] | None,
              description: str | None) -> str:
    """MMRec's text of one item; `categories` is the list of category paths (only the first is used)."""
    first_path = categories[0] if categories else ()
    sentence = (title or "") + " " + (brand or "") + " " + "".join(f"{name} " for name in first_path)
    sentence += description or ""
    return sentence.replace("\n", " ")


def read_item_texts(items_path: str | Path) -> tuple[list[int], list[str]]:
    """(itemIDs, MMRec texts) of every item of a prepared `items.parquet`, in file order."""
    columns = read_columns(items_path, ITEM_TEXT_COLUMNS, "prepared items (run the prepare stage first)")
    texts = [item_text(*fields) for fields in zip(columns["title"], columns["brand"],
                                                   columns["categories"], columns["description"])]
    return columns["itemID"], texts
