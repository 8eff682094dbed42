"""An MMRec data folder as a source: `<name>.inter`, `i_id_mapping.csv`, optional `u_id_mapping.csv`,
`<name>_url.csv`, `text_feat.npy`, `image_feat.npy` (model-spec §1.1).

Every problem is one line naming the file (and line or field) and what was expected.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from viral.stage import StageError

SPLIT_COLUMN = "x_label"
ITEM_MAP = "i_id_mapping.csv"
USER_MAP = "u_id_mapping.csv"
TEXT_FEATURES = "text_feat.npy"
IMAGE_FEATURES = "image_feat.npy"


class MMRecFormatError(StageError):
    """An MMRec file that does not follow the format (one line naming file and field)."""


@dataclass(frozen=True)
class MMRecFolder:
    name: str
    inter: pd.DataFrame  # userID, itemID, split (+ rating, timestamp when the file has them)
    items: pd.DataFrame  # itemID, asin, sorted by itemID (row i = itemID i)
    users: pd.DataFrame | None  # userID, reviewerID, sorted by userID
    image_urls: pd.DataFrame | None  # itemID, asin, imUrl

    @property
    def n_users(self) -> int:
        return int(self.inter["userID"].max()) + 1 if len(self.inter) else 0


def _read_table(path: Path, sep: str, columns: list[str]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise MMRecFormatError(f"{path}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise MMRecFormatError(f"{path}: not a {'tab' if sep == chr(9) else 'comma'}-separated table "
                               f"({str(err).strip().splitlines()[-1]})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MMRecFormatError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(frame.columns)}")
    return frame


def _ints(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """Column as int64; a bad cell is reported with its file line (header = line 1)."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | (values != values.round())
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise MMRecFormatError(
            f"{path}:{row + 2}: field {column!r}: expected an integer, got {frame[column].iloc[row]!r}")
    return values.to_numpy(dtype=np.int64)


def _check_ids(ids: np.ndarray, n: int | None, path: Path, column: str) -> None:
    """Every id in 0..n-1 (or just non-negative when n is None); names the first bad line."""
    bad = (ids < 0) if n is None else (ids < 0) | (ids >= n)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        expected = "a non-negative id" if n is None else f"an id in 0..{n - 1}"
        raise MMRecFormatError(f"{path}:{row + 2}: field {column!r}: expected {expected}, got {ids[row]}")


def read_inter(path: str | Path) -> pd.DataFrame:
    """An MMRec `.inter` file as `userID, itemID, split` (int64, int64, int8), plus `rating` and
    `timestamp` when the file has them (MMRec's 5-column version); ids checked, no duplicate pairs."""
    path = Path(path)
    frame = _read_table(path, "\t", ["userID", "itemID", SPLIT_COLUMN])
    if frame.empty:
        raise MMRecFormatError(f"{path}: no interactions (only a header)")
    out = pd.DataFrame({"userID": _ints(frame, "userID", path), "itemID": _ints(frame, "itemID", path)})
    split = _ints(frame, SPLIT_COLUMN, path)
    bad = ~np.isin(split, (0, 1, 2))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise MMRecFormatError(f"{path}:{row + 2}: field {SPLIT_COLUMN!r}: expected 0, 1 or 2, got {split[row]}")
    out["split"] = split.astype(np.int8)
    _check_ids(out["userID"].to_numpy(), None, path, "userID")
    _check_ids(out["itemID"].to_numpy(), None, path, "itemID")
    if "rating" in frame.columns:
        out["rating"] = pd.to_numeric(frame["rating"], errors="coerce").astype("float32")
    if "timestamp" in frame.columns:
        out["timestamp"] = pd.to_numeric(frame["timestamp"], errors="coerce").astype("Int64")
    duplicated = out.duplicated(["userID", "itemID"])
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise MMRecFormatError(f"{path}:{row + 2}: duplicate (userID, itemID) pair "
                               f"({out['userID'].iloc[row]}, {out['itemID'].iloc[row]})")
    return out


def _read_map(path: Path, key: str, id_column: str, out_key: str) -> pd.DataFrame:
    """An id map (TSV `key id`) as `id_column, out_key`, checked to be a bijection onto 0..n-1, sorted."""
    frame = _read_table(path, "\t", [key, id_column])
    ids = _ints(frame, id_column, path)
    _check_ids(ids, len(frame), path, id_column)
    if len(np.unique(ids)) != len(ids):
        raise MMRecFormatError(f"{path}: field {id_column!r}: expected each id 0..{len(ids) - 1} exactly once")
    if frame[key].duplicated().any():
        value = frame[key][frame[key].duplicated()].iloc[0]
        raise MMRecFormatError(f"{path}: field {key!r}: {value!r} is mapped twice")
    out = pd.DataFrame({id_column: ids, out_key: frame[key].to_numpy()})
    return out.sort_values(id_column, ignore_index=True)


def inter_path(folder: Path) -> Path:
    own = folder / f"{folder.name}.inter"
    if own.is_file():
        return own
    found = sorted(folder.glob("*.inter"))
    if len(found) != 1:
        listed = ", ".join(p.name for p in found) or "none"
        raise MMRecFormatError(f"{folder}: expected exactly one <name>.inter file, found {listed}")
    return found[0]


def read_folder(folder: str | Path) -> MMRecFolder:
    """Read and check an MMRec data folder (features are read separately with `read_feature`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MMRecFormatError(f"{folder}: no such MMRec data folder")
    inter_file = inter_path(folder)
    name = inter_file.stem
    inter = read_inter(inter_file)
    items = _read_map(folder / ITEM_MAP, "asin", "itemID", "asin")
    _check_ids(inter["itemID"].to_numpy(), len(items), inter_file, "itemID")
    users = None
    if (folder / USER_MAP).is_file():
        users = _read_map(folder / USER_MAP, "user_id", "userID", "reviewerID")
        _check_ids(inter["userID"].to_numpy(), len(users), inter_file, "userID")
    n_users = int(inter["userID"].max()) + 1 if len(inter) else 0
    present = np.bincount(inter["userID"].to_numpy(), minlength=n_users) > 0
    if not present.all():
        raise MMRecFormatError(f"{inter_file}: userID must be contiguous; user {int(np.argmin(present))} has no row")
    image_urls = None
    url_path = folder / f"{name}_url.csv"
    if url_path.is_file():
        image_urls = _read_table(url_path, ",", ["itemID", "asin", "imUrl"])
        image_urls["itemID"] = _ints(image_urls, "itemID", url_path)
        merged = items.merge(image_urls, on="itemID", how="left", suffixes=("", "_url"))
        mismatch = merged["asin_url"].notna() & (merged["asin"] != merged["asin_url"])
        if mismatch.any():
            row = merged[mismatch].iloc[0]
            raise MMRecFormatError(f"{url_path}: itemID {row['itemID']} has asin {row['asin_url']!r}, "
                                   f"but {ITEM_MAP} maps it to {row['asin']!r}")
    return MMRecFolder(name=name, inter=inter, items=items, users=users, image_urls=image_urls)


def read_feature(path: str | Path, n_items: int) -> np.ndarray:
    """An MMRec `*_feat.npy` as float32 (n_items, d) (MMRec stores image features as float64)."""
    path = Path(path)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise MMRecFormatError(f"{path}: not a numpy array file ({err})") from None
    if array.ndim != 2 or array.shape[0] != n_items:
        raise MMRecFormatError(f"{path}: expected shape ({n_items}, d), got {array.shape}")
    return array.astype(np.float32, copy=False)


def read_folder_features(folder: str | Path) -> dict[str, np.ndarray]:
    """The feature files an MMRec folder holds, `{"text": ..., "image": ...}` (float32, row = itemID),
    checked against its item map; absent files are simply left out."""
    folder = Path(folder)
    n_items = len(_read_map(folder / ITEM_MAP, "asin", "itemID", "asin"))
    found = {}
    for modality, name in (("text", TEXT_FEATURES), ("image", IMAGE_FEATURES)):
        if (folder / name).is_file():
            found[modality] = read_feature(folder / name, n_items)
    return found
