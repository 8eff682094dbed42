"""Content-addressed caption cache, written one shard per completed chunk so that runs resume.

Layout: `<cache_dir>/<dataset>/<prompt>/part-<random>.parquet`, each a table of finished captions
keyed by `caption_key(...)`, a hash of everything that changes the output: image bytes hash,
rendered instruction (template + title), engine (transformers | vllm: the `ray` backend writes the
keys of the engine it runs), model, sampling, pixel cap and image geometry. Nothing else (batch size,
shard size, item order, executor) is in the key, so those can change freely and a run resumes across
backends that share an engine. The cache is not a DVC
output on purpose: DVC deletes a stage's outputs before running it, which would lose the shards.
Parts are written to a temporary name and renamed, so a killed run leaves only whole parts.
"""
from __future__ import annotations

import hashlib
import json
import logging
import uuid
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from viral.caption.geometry import GEOMETRY
from viral.caption.output import OUTPUT_SCHEMA
from viral.io import write_parquet

log = logging.getLogger(__name__)

PART_PATTERN = "part-*.parquet"
# A cache entry is an output row minus what depends on the item (itemID, asin) or the run (status).
CACHE_SCHEMA = pa.schema(
    [pa.field("key", pa.string())]
    + [field for field in OUTPUT_SCHEMA if field.name not in ("itemID", "asin", "status")]
)


def caption_key(
    *, image_sha256: str, prompt_text: str, backend: str, model: str, sampling: dict, max_pixels: int
) -> str:
    fields = dict(
        image=image_sha256, prompt=prompt_text, backend=backend, model=model, sampling=sampling, max_pixels=max_pixels,
        geometry=GEOMETRY,
    )  # fmt: skip
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode("utf-8")).hexdigest()


class CaptionCache:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def parts(self) -> list[Path]:
        return sorted(self.folder.glob(PART_PATTERN))

    def load(self) -> dict[str, dict]:
        """key -> cached row. A part that cannot be read is skipped with a warning (it is only a cache)."""
        rows: dict[str, dict] = {}
        for part in self.parts():
            try:
                table = pq.read_table(part, schema=CACHE_SCHEMA)
            except Exception as err:  # a damaged part must not block captioning; its items are redone
                log.warning("%s: unreadable cache part skipped (%s)", part, err)
                continue
            for row in table.to_pylist():
                rows[row["key"]] = row
        return rows

    def append(self, rows: Iterable[dict]) -> Path | None:
        """Write `rows` (CACHE_SCHEMA fields) as one new part; atomic."""
        rows = list(rows)
        if not rows:
            return None
        path = self.folder / f"part-{uuid.uuid4().hex}.parquet"
        write_parquet(path, pa.Table.from_pylist(rows, schema=CACHE_SCHEMA))
        return path

    def compact(self) -> None:
        """Merge all parts into one (new part first, then old ones removed: a kill leaves duplicates, not loss)."""
        parts = self.parts()
        if len(parts) < 2:
            return
        rows = self.load()
        new_part = self.append(rows.values())
        for part in parts:
            if part != new_part:
                part.unlink(missing_ok=True)
