"""`precomputed` backend: import descriptions someone else generated (e.g. the authors' released CSVs).

Accepted files, keyed by `asin` (preferred when both are present) or `itemID`:
- CSV with a header `asin,description` (the authors' format) or `itemID,description`; extra columns ignored;
- JSON: an object {key: description} (keys are asins) or a list of records {asin|itemID, description};
- JSON lines (`.jsonl`): one record per line;
- Parquet with the same columns.
Every problem is one line naming the file, the line or row, and the field. Blank descriptions count
as missing; a key repeated with a different description is an error (which one would be right?).
A file that describes none of the dataset's items is an error; one that describes fewer than
`caption.min_coverage` of them is imported with a loud warning (the rest are mean-imputed downstream).
"""
from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from viral.stage import StageError

log = logging.getLogger(__name__)

KEY_COLUMNS = ("asin", "itemID")


class PrecomputedFormatError(StageError):
    """A malformed descriptions file."""


@dataclass(frozen=True)
class Descriptions:
    key: str  # "asin" or "itemID"
    text: dict  # key value -> description (blank ones dropped)


class _Collector:
    def __init__(self, path: Path, key: str):
        self.path, self.key = path, key
        self.text: dict = {}
        self.where: dict = {}

    def add(self, key_value, description, where: str) -> None:
        if key_value is None or (isinstance(key_value, str) and not key_value.strip()):
            raise PrecomputedFormatError(f"{self.path}: {where}: empty {self.key}")
        if self.key == "itemID":
            key_value = _item_id(self.path, key_value, where)
        else:
            key_value = str(key_value).strip()
        if description is None:
            description = ""
        if not isinstance(description, str):
            raise PrecomputedFormatError(f"{self.path}: {where}: description: expected text, got {description!r}")
        description = description.strip()
        if not description:
            return
        previous = self.text.get(key_value)
        if previous is not None and previous != description:
            raise PrecomputedFormatError(
                f"{self.path}: {where}: {self.key} {key_value!r} repeats {self.where[key_value]}"
                " with a different description"
            )
        self.text[key_value] = description
        self.where[key_value] = where

    def result(self) -> Descriptions:
        return Descriptions(self.key, self.text)


def _item_id(path: Path, value, where: str) -> int:
    if isinstance(value, bool):
        raise PrecomputedFormatError(f"{path}: {where}: itemID: expected an integer, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise PrecomputedFormatError(f"{path}: {where}: itemID: expected an integer, got {value!r}") from None
    if str(value).strip() not in (str(number), f"{number}.0"):
        raise PrecomputedFormatError(f"{path}: {where}: itemID: expected an integer, got {value!r}")
    return number


def _key_of(path: Path, columns, where: str) -> str:
    found = ", ".join(map(str, columns))
    if "description" not in columns:
        raise PrecomputedFormatError(f"{path}: {where}: no 'description' column (found: {found})")
    for key in KEY_COLUMNS:
        if key in columns:
            return key
    raise PrecomputedFormatError(f"{path}: {where}: expected an 'asin' or 'itemID' column (found: {found})")


def _read_csv(path: Path) -> Descriptions:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise PrecomputedFormatError(f"{path}: empty file (expected a header such as asin,description)") from None
        header = [name.strip().lstrip("\ufeff") for name in header]
        key = _key_of(path, header, "line 1")
        key_at, text_at = header.index(key), header.index("description")
        collector = _Collector(path, key)
        try:
            for row in reader:
                where = f"line {reader.line_num}"
                if not row:
                    continue
                if len(row) != len(header):
                    raise PrecomputedFormatError(
                        f"{path}: {where}: expected {len(header)} fields ({','.join(header)}), got {len(row)}"
                    )
                collector.add(row[key_at], row[text_at], where)
        except csv.Error as err:
            raise PrecomputedFormatError(f"{path}: line {reader.line_num}: malformed CSV ({err})") from None
    return collector.result()


def _read_records(path: Path, records, label: str) -> Descriptions:
    collector = None
    for number, record in records:
        where = f"{label} {number}"
        if not isinstance(record, dict):
            raise PrecomputedFormatError(
                f"{path}: {where}: expected an object with a key and 'description', got {record!r}"
            )
        if collector is None:
            collector = _Collector(path, _key_of(path, list(record), where))
        if collector.key not in record:
            raise PrecomputedFormatError(f"{path}: {where}: missing field {collector.key!r}")
        collector.add(record[collector.key], record.get("description"), where)
    if collector is None:
        raise PrecomputedFormatError(f"{path}: no descriptions in the file")
    return collector.result()


def _read_json(path: Path) -> Descriptions:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise PrecomputedFormatError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
    if isinstance(data, dict):
        collector = _Collector(path, "asin")
        for asin, description in data.items():
            collector.add(asin, description, f"key {asin!r}")
        return collector.result()
    if isinstance(data, list):
        return _read_records(path, enumerate(data), "record")
    raise PrecomputedFormatError(f"{path}: expected an object {{asin: description}} or a list of records")


def _read_jsonl(path: Path) -> Descriptions:
    def records():
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as err:
                    raise PrecomputedFormatError(f"{path}: line {number}: invalid JSON ({err.msg})") from None

    return _read_records(path, records(), "line")


def _read_parquet(path: Path) -> Descriptions:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise PrecomputedFormatError(f"{path}: not a readable Parquet file ({err})") from None
    key = _key_of(path, table.column_names, "schema")
    collector = _Collector(path, key)
    for row, (key_value, description) in enumerate(
        zip(table.column(key).to_pylist(), table.column("description").to_pylist())
    ):
        collector.add(key_value, description, f"row {row}")
    return collector.result()


def check_coverage(path: str | Path, descriptions: Descriptions, matched: int, n_items: int, dataset: str,
                   min_coverage: float) -> float:
    """The share of the dataset's `n_items` items the file describes (`matched` of them): an error when
    it is zero, a warning below `min_coverage`."""
    if not n_items:
        return 0.0
    held = len(descriptions.text)
    if not matched:
        what = (f"none of its {held} {descriptions.key}s matches" if held else
                "it holds no description at all (empty, header only or all blank), so none matches")
        raise StageError(f"{path}: {what} an item of dataset {dataset}; expected descriptions keyed by the "
                         "prepared items' asin or itemID (caption.precomputed)")
    coverage = matched / n_items
    if coverage < min_coverage:
        log.warning("%s: describes only %d of %d items of dataset %s (%.1f%%, below caption.min_coverage "
                    "%.0f%%); the other %d get status=missing and mean-imputed features", path, matched, n_items,
                    dataset, 100 * coverage, 100 * min_coverage, n_items - matched)
    return coverage


READERS = {".csv": _read_csv, ".json": _read_json, ".jsonl": _read_jsonl, ".parquet": _read_parquet}


def read_descriptions(path: str | Path) -> Descriptions:
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise PrecomputedFormatError(f"{path}: unsupported file type; expected one of {', '.join(READERS)}")
    if not path.is_file():
        raise PrecomputedFormatError(f"{path}: descriptions file not found (caption.precomputed)")
    try:
        return reader(path)
    except UnicodeDecodeError as err:
        raise PrecomputedFormatError(f"{path}: not UTF-8 text (byte {err.start})") from None
