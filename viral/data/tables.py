"""Tabular inputs read by column name: CSV / TSV (optionally gzip), Parquet and JSON lines.

Used by custom datasets (an interactions file and an items file) and by the Amazon 2023 benchmark
splits (CSV). Interaction tables stream into compact `RawInteractions` (Arrow's CSV reader, or the
Parquet row groups; JSON lines go through `viral.data.reviews`); item tables are read whole. Every
problem is one line naming the file, the row (`row N` counts data rows from 1, the header excluded;
JSON lines say `file:line`) and the field: a missing column, an empty file, a value of the wrong
type, a missing key.
"""
from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from viral.data.interactions import InteractionCollector, RawInteractions, has_blank
from viral.data.records import BadLine, BadLines, RawFormatError, is_gzip, json_object, lines
from viral.data.reviews import ReviewFields, read_review_interactions

FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl",
           ".ndjson": "jsonl"}
DELIMITERS = {"csv": ",", "tsv": "\t"}
BLOCK_BYTES = 4 << 20


class TableError(RawFormatError):
    """A table that does not have the expected columns or values (one line: file, row, field)."""


def table_format(path: str | Path) -> str:
    """csv | tsv | parquet | jsonl, from the file name (a `.gz` suffix is allowed except for Parquet)."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    fmt = FORMATS.get(Path(name).suffix)
    if fmt is None or (fmt == "parquet" and is_gzip(path)):
        raise TableError(f"{path}: unknown table format; expected .csv, .tsv, .jsonl (each optionally .gz) "
                         "or .parquet")
    return fmt


@dataclass(frozen=True)
class InteractionColumns:
    """Column names of an interaction table; empty rating/timestamp = the table has none. `where` is the
    params key the names come from (for messages)."""

    user: str
    item: str
    rating: str = ""
    timestamp: str = ""
    where: str = "columns"


def _json_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of every non-blank line of a JSON-lines file."""
    for number, line in lines(path):
        if not line.strip():
            continue
        try:
            yield number, json_object(line)
        except BadLine as err:
            raise TableError(f"{path}:{number}: expected a JSON object: {err}") from None


def _text_stream(path: Path):
    opener = gzip.open if is_gzip(path) else open
    return opener(path, "rt", encoding="utf-8", newline="")


def _gzip_guard(path: Path, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise TableError(f"{path}: truncated or corrupt gzip ({err}); replace the file") from None
    except UnicodeDecodeError as err:
        raise TableError(f"{path}: not UTF-8 text ({err})") from None


def csv_header(path: Path, fmt: str) -> list[str]:
    """The header row of a CSV/TSV file; an empty file is an error."""
    def first_row() -> list[str] | None:
        with _text_stream(path) as stream:
            return next(csv.reader(stream, delimiter=DELIMITERS[fmt]), None)

    header = _gzip_guard(path, first_row)
    if not header:
        raise TableError(f"{path}: empty file (expected a header row with column names)")
    return header


def _check_columns(path: Path, found: list[str], wanted: dict[str, str]) -> None:
    """Every column in `wanted` (params key -> column name) is in `found`."""
    for key, name in wanted.items():
        if name not in found:
            raise TableError(f"{path}: missing column {name!r} ({key}); found: {', '.join(found) or 'none'}")


def _wanted(columns: InteractionColumns, present: list[str]) -> tuple[dict[str, str], str, str]:
    """Required columns by params key, and the rating / timestamp columns in use ("" = none)."""
    wanted = {f"{columns.where}.user": columns.user, f"{columns.where}.item": columns.item}
    optional = {}
    for role in ("rating", "timestamp"):
        name = getattr(columns, role)
        if name and name in present:
            optional[role] = name
    return wanted, optional.get("rating", ""), optional.get("timestamp", "")


def _float(value: str) -> float:
    number = float(value)
    if not np.isfinite(number):
        raise ValueError(value)
    return number


def _int(value: str) -> int:
    return int(value.strip())


def _csv_rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(data row number from 1, {column: cell}) of a CSV/TSV file, header excluded."""
    with _text_stream(path) as stream:
        reader = csv.reader(stream, delimiter=DELIMITERS[fmt])
        header = next(reader, None) or []
        for number, row in enumerate(reader, start=1):
            if not row:
                continue
            if len(row) != len(header):
                raise TableError(f"{path}: row {number}: expected {len(header)} fields ({', '.join(header)}), "
                                 f"got {len(row)}")
            yield number, dict(zip(header, row))


def _exact_csv(path: Path, fmt: str, columns: InteractionColumns, rating: str, timestamp: str,
               timestamp_required: bool) -> RawInteractions:
    collector = InteractionCollector()

    def rows() -> None:
        for number, row in _csv_rows(path, fmt):
            user, item = row[columns.user], row[columns.item]
            for name, value in ((columns.user, user), (columns.item, item)):
                if not value:
                    raise TableError(f"{path}: row {number}: field {name!r}: missing or empty")
            value = row[rating] if rating else ""
            try:
                rating_value = _float(value) if value.strip() else float("nan")
            except ValueError:
                raise TableError(f"{path}: row {number}: field {rating!r}: expected a number, got {value!r}") from None
            stamp = row[timestamp].strip() if timestamp else ""
            if not stamp and timestamp_required:
                raise TableError(f"{path}: row {number}: field {timestamp!r}: missing")
            try:
                stamp_value = _int(stamp) if stamp else None
            except ValueError:
                raise TableError(f"{path}: row {number}: field {timestamp!r}: expected an integer time "
                                 f"(seconds or milliseconds since 1970), got {stamp!r}") from None
            collector.add_row(user, item, rating_value, stamp_value)

    _gzip_guard(path, rows)
    return collector.finish()


class _NotForArrow(Exception):
    pass


def _fast_csv(path: Path, fmt: str, columns: InteractionColumns, rating: str, timestamp: str,
              timestamp_required: bool) -> RawInteractions:
    types = {columns.user: pa.string(), columns.item: pa.string()}
    if rating:
        types[rating] = pa.float64()
    if timestamp:
        types[timestamp] = pa.int64()
    collector = InteractionCollector()
    try:
        reader = pacsv.open_csv(
            pa.input_stream(str(path), compression="gzip" if is_gzip(path) else None),
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(delimiter=DELIMITERS[fmt]),
            convert_options=pacsv.ConvertOptions(column_types=types, include_columns=list(types),
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False))
        for batch in reader:
            users, items = batch.column(columns.user), batch.column(columns.item)
            times = batch.column(timestamp) if timestamp else None
            if has_blank(users) or has_blank(items) or (timestamp_required and (times is None or times.null_count)):
                raise _NotForArrow("a missing value")
            ratings = batch.column(rating) if rating else None
            if ratings is not None and not np.isfinite(ratings.drop_null().to_numpy()).all():
                raise _NotForArrow("a non-finite rating")
            collector.add_arrays(users, items, ratings, times)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise _NotForArrow(str(err)) from None
    return collector.finish()


def _parquet_column(path: Path, table_schema: pa.Schema, name: str, kinds: tuple[Callable, ...], expected: str
                    ) -> None:
    kind = table_schema.field(name).type
    if not any(check(kind) for check in kinds):
        raise TableError(f"{path}: column {name!r} has type {kind}, expected {expected}")


def _parquet(path: Path, columns: InteractionColumns, rating: str, timestamp: str,
             timestamp_required: bool) -> RawInteractions:
    try:
        source = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise TableError(f"{path}: not a Parquet file ({err})") from None
    schema = source.schema_arrow
    _check_columns(path, schema.names, {f"{columns.where}.user": columns.user, f"{columns.where}.item": columns.item})
    key_types = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer)
    for name in (columns.user, columns.item):
        _parquet_column(path, schema, name, key_types, "strings or integers")
    if rating:
        _parquet_column(path, schema, rating, (pa.types.is_floating, pa.types.is_integer), "numbers")
    if timestamp:
        _parquet_column(path, schema, timestamp, (pa.types.is_integer, pa.types.is_timestamp),
                        "integers (seconds or milliseconds since 1970) or timestamps")
    collector = InteractionCollector()
    offset = 0
    names = [name for name in (columns.user, columns.item, rating, timestamp) if name]
    for batch in source.iter_batches(columns=list(dict.fromkeys(names))):
        for name in (columns.user, columns.item) + ((timestamp,) if timestamp_required and timestamp else ()):
            nulls = np.flatnonzero(np.asarray(batch.column(name).is_null()))
            if len(nulls):
                raise TableError(f"{path}: row {offset + int(nulls[0]) + 1}: field {name!r}: missing")
        users, items = batch.column(columns.user).cast(pa.string()), batch.column(columns.item).cast(pa.string())
        for name, values in ((columns.user, users), (columns.item, items)):
            empty = np.flatnonzero(np.asarray(values.to_numpy(zero_copy_only=False) == ""))
            if len(empty):
                raise TableError(f"{path}: row {offset + int(empty[0]) + 1}: field {name!r}: missing or empty")
        times = None
        if timestamp:
            times = batch.column(timestamp)
            if pa.types.is_timestamp(times.type):  # a date-time column: seconds since 1970
                times = times.cast(pa.timestamp("s"), safe=False)
            times = times.cast(pa.int64())
        collector.add_arrays(users, items, batch.column(rating) if rating else None, times)
        offset += batch.num_rows
    return collector.finish()


def read_interaction_table(path: str | Path, columns: InteractionColumns, bad_lines: BadLines = "error",
                           timestamp_required: bool = False) -> RawInteractions:
    """The (user, item, rating, timestamp) rows of an interaction table, in file order.

    User and item must be present on every row; rating (NaN when empty) and timestamp (unknown when
    empty, unless `timestamp_required`) are read when their columns exist. `bad_lines` applies to
    JSON lines only: a table row that is wrong always stops with its row and field.
    """
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    fmt = table_format(path)
    if fmt == "jsonl":
        fields = ReviewFields(user=columns.user, item=columns.item, rating=columns.rating,
                              timestamp=columns.timestamp, timestamp_required=timestamp_required, numeric_ids=True)
        raw = read_review_interactions(path, fields, bad_lines)
    elif fmt == "parquet":
        try:
            names = pq.read_schema(path).names
        except (pa.ArrowException, OSError) as err:
            raise TableError(f"{path}: not a Parquet file ({err})") from None
        _, rating, timestamp = _wanted(columns, names)
        if timestamp_required and not timestamp:
            _check_columns(path, names, {f"{columns.where}.timestamp": columns.timestamp})
        raw = _parquet(path, columns, rating, timestamp, timestamp_required)
    else:
        header = csv_header(path, fmt)
        wanted, rating, timestamp = _wanted(columns, header)
        _check_columns(path, header, wanted)
        if timestamp_required and not timestamp:
            _check_columns(path, header, {f"{columns.where}.timestamp": columns.timestamp})
        try:
            raw = _fast_csv(path, fmt, columns, rating, timestamp, timestamp_required)
        except _NotForArrow:
            raw = _exact_csv(path, fmt, columns, rating, timestamp, timestamp_required)
    if not len(raw):
        raise TableError(f"{path}: no rows (empty file?)")
    return raw


def locate_row(path: str | Path, columns: InteractionColumns, predicate: Callable[[str, str, Any], bool]) -> str:
    """Where the first row whose (user, item, timestamp or None) satisfies `predicate` is: `row N`
    (CSV/TSV/Parquet) or `line N` (JSON lines)."""
    path = Path(path)
    fmt = table_format(path)
    if fmt == "jsonl":
        for number, record in _json_records(path):
            if predicate(str(record.get(columns.user)), str(record.get(columns.item)), record.get(columns.timestamp)):
                return f"line {number}"
    elif fmt == "parquet":
        table = pq.read_table(path, columns=[c for c in (columns.user, columns.item, columns.timestamp) if c])
        times = table.column(columns.timestamp).to_pylist() if columns.timestamp else [None] * table.num_rows
        for number, (user, item, stamp) in enumerate(zip(table.column(columns.user).to_pylist(),
                                                          table.column(columns.item).to_pylist(), times), start=1):
            if predicate(str(user), str(item), stamp):
                return f"row {number}"
    else:
        def scan() -> str | None:
            for number, row in _csv_rows(path, fmt):
                stamp = row.get(columns.timestamp, "").strip() if columns.timestamp else ""
                if predicate(row[columns.user], row[columns.item], stamp or None):
                    return f"row {number}"
            return None

        found = _gzip_guard(path, scan)
        if found:
            return found
    return "an unknown row"


@dataclass(frozen=True)
class TableColumns:
    """Some columns of a whole table: `values[key]` lists the cells of the column named by params key
    `key` (str for CSV/TSV; JSON or Parquet values otherwise); `positions[k]` locates row k."""

    path: Path
    values: dict[str, list[Any]]
    positions: list[int]
    word: str  # "line" (JSON lines) or "row"

    def where(self, row: int) -> str:
        """`file:N` for JSON lines, `file: row N` for tables."""
        number = self.positions[row]
        return f"{self.path}:{number}" if self.word == "line" else f"{self.path}: row {number}"


def _present(path: Path, found: list[str], required: dict[str, str], optional: dict[str, str]) -> dict[str, str]:
    _check_columns(path, found, required)
    return {**required, **{key: name for key, name in optional.items() if name in found}}


def read_table_columns(path: str | Path, required: dict[str, str], optional: dict[str, str]) -> TableColumns:
    """The named columns of a whole table (required: params key -> column name; optional columns that
    the file lacks are left out). A missing required column or an empty table is an error."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such file")
    fmt = table_format(path)
    if fmt == "jsonl":
        records = list(_json_records(path))
        if not records:
            raise TableError(f"{path}: no rows (empty file?)")
        present = _present(path, sorted({key for _, record in records for key in record}), required, optional)
        values = {key: [record.get(name) for _, record in records] for key, name in present.items()}
        return TableColumns(path, values, [number for number, _ in records], "line")
    if fmt == "parquet":
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowException, OSError) as err:
            raise TableError(f"{path}: not a Parquet file ({err})") from None
        present = _present(path, schema.names, required, optional)
        table = pq.read_table(path, columns=list(dict.fromkeys(present.values())))
    else:
        present = _present(path, csv_header(path, fmt), required, optional)

        def read() -> pa.Table:
            return pacsv.read_csv(
                pa.input_stream(str(path), compression="gzip" if is_gzip(path) else None),
                parse_options=pacsv.ParseOptions(delimiter=DELIMITERS[fmt], newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.string() for name in present.values()},
                    include_columns=list(dict.fromkeys(present.values())), strings_can_be_null=False,
                    quoted_strings_can_be_null=False))

        try:
            table = _gzip_guard(path, read)
        except (pa.ArrowException, OSError) as err:
            raise TableError(f"{path}: not a readable {fmt.upper()} table ({str(err).splitlines()[0]})") from None
    if not table.num_rows:
        raise TableError(f"{path}: no rows (empty file?)")
    values = {key: table.column(name).to_pylist() for key, name in present.items()}
    return TableColumns(path, values, list(range(1, table.num_rows + 1)), "row")
