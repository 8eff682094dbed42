"""Line-by-line reading of raw record files with one-line errors naming the file, line and field.

Shared by every raw reader (Amazon 2014 / 2018 / 2023, custom JSON lines): a gzip (or plain) file is
read line by line, each non-blank line parsed by a source-specific function, and a malformed line is
either reported as `file:line: expected ...: reason` or, with `bad_lines="skip"`, counted and skipped.
A truncated or corrupt gzip is a one-line error too.
"""
from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from viral.stage import StageError

log = logging.getLogger(__name__)

BadLines = Literal["error", "skip"]
SKIP_HINT = "prepare.bad_lines: skip to skip such lines"


class RawFormatError(StageError):
    """A raw file that does not follow its format (reported as one line)."""


class BadLine(ValueError):
    """One malformed line; the message says what was wrong."""


def is_gzip(path: str | Path) -> bool:
    return str(path).endswith(".gz")


def lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line) of a gzip (by `.gz` suffix) or plain file; a damaged gzip
    becomes a RawFormatError naming the last good line."""
    path = Path(path)
    if not path.is_file():
        raise RawFormatError(f"{path}: no such file")
    number = 0
    opener = gzip.open if is_gzip(path) else open
    try:
        with opener(path, "rb") as stream:
            for number, line in enumerate(stream, start=1):
                yield number, line
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise RawFormatError(
            f"{path}: truncated or corrupt gzip after line {number} ({err}); delete the file and download it again"
        ) from None


def parsed_records(
    path: str | Path,
    parse: Callable[[bytes], Any],
    what: str,
    bad_lines: BadLines,
    keep: Callable[[bytes], bool] | None = None,
    counter: list[int] | None = None,
) -> Iterator[tuple[int, Any]]:
    """(line number, `parse(line)`) of every non-blank line (and, with `keep`, only lines it accepts).

    A line whose parse raises BadLine stops with `file:line: expected <what>: <reason>`, or with
    `bad_lines="skip"` is skipped and counted in `counter[0]`.
    """
    if bad_lines not in ("error", "skip"):
        raise ValueError(f"bad_lines must be 'error' or 'skip', got {bad_lines!r}")
    skipped = 0
    for number, line in lines(path):
        if not line.strip() or (keep is not None and not keep(line)):
            continue
        try:
            record = parse(line)
        except BadLine as err:
            if bad_lines == "error":
                raise RawFormatError(f"{path}:{number}: expected {what}: {err} ({SKIP_HINT})") from None
            skipped += 1
            continue
        yield number, record
    if counter is not None:
        counter[0] += skipped
    if skipped:
        log.warning("%s: skipped %d malformed lines", path, skipped)


def read_records(
    path: str | Path,
    parse: Callable[[bytes], dict[str, Any]],
    what: str,
    bad_lines: BadLines,
    keep: Callable[[bytes], bool] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Every parsed record of `path` (see `parsed_records`) and the count of skipped lines."""
    counter = [0]
    records = [record for _, record in parsed_records(path, parse, what, bad_lines, keep, counter)]
    return records, counter[0]


def json_object(line: bytes) -> dict[str, Any]:
    """One JSON-lines line as a dict; anything else is a BadLine saying what it was."""
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadLine(f"invalid JSON ({err})") from None
    if not isinstance(record, dict):
        raise BadLine(f"a JSON object, got {type(record).__name__}")
    return record


def field(record: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any) -> Any:
    """`record[name]` when it has type `kind` (bool never counts as a number), `default` when absent or null."""
    value = record.get(name, default)
    if value is None:
        return default
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _types(kind)):
        raise BadLine(f"field {name!r} has a {type(value).__name__}: {value!r:.60}")
    return value


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def required_text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise BadLine(f"missing or empty field {name!r}")
    return value


def text_list(record: dict[str, Any], name: str) -> list[str]:
    """A field holding a list of strings (a lone string counts as a list of one; absent/null -> [])."""
    value = record.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadLine(f"field {name!r} must be a list of str, got {value!r:.60}")
    return value


def joined_text(*parts: list[str]) -> str:
    """Non-blank strings of the given lists, stripped and joined by single spaces."""
    return " ".join(text.strip() for part in parts for text in part if text and text.strip())
