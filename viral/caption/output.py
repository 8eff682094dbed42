"""The caption table (`data/captions/<dataset>/<prompt>.parquet`) and its row statuses."""
from __future__ import annotations

import json

import pyarrow as pa

# ok: a description; missing_image: the item has no decodable image in the images stage, so it is not
# captioned (empty description; encode mean-imputes it); failed: the model or image decoding failed
# (retried on the next run, never cached); missing: `precomputed` file has no description for the item.
STATUSES = ("ok", "missing_image", "failed", "missing")

OUTPUT_SCHEMA = pa.schema(
    [
        ("itemID", pa.int64()),
        ("asin", pa.string()),
        ("description", pa.string()),
        ("backend", pa.string()),
        ("model", pa.string()),
        ("prompt_hash", pa.string()),
        ("prompt_tokens", pa.int32()),
        ("generated_tokens", pa.int32()),
        ("finish_reason", pa.string()),
        ("status", pa.string()),
    ]
)


def empty_row(item_id: int, asin: str, status: str, backend: str, model: str, prompt_hash: str | None) -> dict:
    return dict(
        itemID=item_id,
        asin=asin,
        description="",
        backend=backend,
        model=model,
        prompt_hash=prompt_hash,
        prompt_tokens=None,
        generated_tokens=None,
        finish_reason=None,
        status=status,
    )


def output_table(rows: list[dict], provenance: dict) -> pa.Table:
    """Rows sorted by itemID; `provenance` (prompt text, sampling, ...) goes into the schema metadata."""
    rows = sorted(rows, key=lambda row: row["itemID"])
    schema = OUTPUT_SCHEMA.with_metadata({"viral.caption": json.dumps(provenance, sort_keys=True)})
    return pa.Table.from_pylist(rows, schema=schema)
