"""Review files (JSON lines, gzip or plain) streamed into compact `RawInteractions`.

Only four fields of each review are kept (user, item, rating, timestamp; their names differ per
release, see `ReviewFields`), so memory follows the number of reviews, never the review text.

Two readers give the same result. The fast one is Arrow's JSON reader with an explicit schema
(C++, block by block, other fields ignored). Anything it cannot take (a malformed or mistyped line,
a missing key field, a truncated gzip, a non-standard literal) makes the whole file go through the
exact reader instead: Python's `json` line by line, which reports the first bad line as
`file:line: expected a JSON review object: <reason>` or, with `bad_lines="skip"`, skips and counts
such lines.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pj

from viral.data.interactions import InteractionCollector, RawInteractions, has_blank
from viral.data.records import BadLine, BadLines, field, is_gzip, json_object, parsed_records, required_text

log = logging.getLogger(__name__)

WHAT = "a JSON review object"
# Arrow parses this many bytes at a time; a line longer than a block sends the file to the exact reader.
BLOCK_BYTES = 4 << 20


@dataclass(frozen=True)
class ReviewFields:
    """The names of the four kept fields in a release's review lines."""

    user: str
    item: str
    rating: str
    timestamp: str
    timestamp_required: bool = False
    # Custom data may use numbers as ids; Amazon ids are always strings.
    numeric_ids: bool = False

    def schema(self) -> pa.Schema:
        """The kept fields for Arrow (a release without ratings or timestamps names them "")."""
        kinds = ((self.user, pa.string()), (self.item, pa.string()), (self.rating, pa.float64()),
                 (self.timestamp, pa.int64()))
        return pa.schema([(name, kind) for name, kind in kinds if name])


class _NotForArrow(Exception):
    """The fast reader cannot take this file; the exact reader will say why (or read it)."""


def _fast(path: Path, fields: ReviewFields) -> RawInteractions:
    options = pj.ParseOptions(explicit_schema=fields.schema(), unexpected_field_behavior="ignore")
    collector = InteractionCollector()
    try:
        stream = pa.input_stream(str(path), compression="gzip" if is_gzip(path) else None)
        reader = pj.open_json(stream, read_options=pj.ReadOptions(block_size=BLOCK_BYTES), parse_options=options)
        for batch in reader:
            users, items = batch.column(fields.user), batch.column(fields.item)
            times = batch.column(fields.timestamp) if fields.timestamp else None
            if has_blank(users) or has_blank(items) or (fields.timestamp_required and times.null_count):
                raise _NotForArrow("a missing key field")
            collector.add_arrays(users, items, batch.column(fields.rating) if fields.rating else None, times)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise _NotForArrow(str(err)) from None
    return collector.finish()


def _parser(fields: ReviewFields):
    id_kinds = (str, int) if fields.numeric_ids else str

    def key(record: dict, name: str) -> str:
        if fields.numeric_ids and isinstance(record.get(name), int) and not isinstance(record.get(name), bool):
            return str(record[name])
        if not isinstance(record.get(name), id_kinds) and record.get(name) is not None:
            raise BadLine(f"field {name!r} has a {type(record[name]).__name__}: {record[name]!r:.60}")
        return required_text(record, name)

    def parse(line: bytes) -> tuple[str, str, float, int | None]:
        record = json_object(line)
        user, item = key(record, fields.user), key(record, fields.item)
        rating = field(record, fields.rating, (int, float), float("nan")) if fields.rating else float("nan")
        timestamp = field(record, fields.timestamp, int, None) if fields.timestamp else None
        if timestamp is None and fields.timestamp_required:
            raise BadLine(f"missing field {fields.timestamp!r}")
        return user, item, float(rating), timestamp

    return parse


def _exact(path: Path, fields: ReviewFields, bad_lines: BadLines) -> RawInteractions:
    collector = InteractionCollector()
    skipped = [0]
    for _, row in parsed_records(path, _parser(fields), WHAT, bad_lines, counter=skipped):
        collector.add_row(*row)
    return collector.finish(bad_lines=skipped[0])


def read_review_interactions(path: str | Path, fields: ReviewFields, bad_lines: BadLines = "error"
                             ) -> RawInteractions:
    """The (user, item, rating, timestamp) of every review line of `path`, in file order."""
    path = Path(path)
    try:
        return _fast(path, fields)
    except _NotForArrow as err:
        log.info("%s: exact line-by-line reading (%s)", path, str(err).splitlines()[0] if str(err) else "")
    return _exact(path, fields, bad_lines)

