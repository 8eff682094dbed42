"""The prepare stage: a dataset's raw files -> k-core, MMRec ids and a split -> Parquet (docs/artifacts.md).

Whatever the source, interactions are read into compact integer codes (viral/data/interactions.py),
then: one interaction per (user, item) (the first in file order; the earliest for Amazon 2023, as its
benchmark files), the iterative `prepare.k_core` filter on users and items, ids in order of first
appearance (MMRec's `pd.unique`) and the dataset's split:
- `random`: MMRec's per-user rule with `data_seed`;
- `last_out` / `timestamp`: chronological leave-last-out, or global time cuts (needs timestamps);
- `mmrec`: adopt an MMRec folder's `.inter` exactly (imported into `data/raw/<dataset>/mmrec/`); the
  raw files supply item text and ratings and the split is checked against them;
- `published_last_out` / `published_timestamp` (Amazon 2023): the released 5-core split files, adopted
  as they are.
Item metadata is read only for the items that survive, so memory follows the kept items.
`source: mmrec` adopts the folder as is (no raw text: item text fields stay empty).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from viral.data import amazon, amazon2018, amazon2023, custom
from viral.data.config import PrepareConfig
from viral.data.datasets import Dataset, SplitSettings
from viral.data.download import MMREC_SPLIT_DIR
from viral.data.interactions import RawInteractions, first_appearance_ids, key_strings, unique_pairs
from viral.data.kcore import kcore_mask
from viral.data.mmrec import MMRecFolder, read_folder
from viral.data.prepared import Prepared, empty_items, items_with_meta, split_counts, write_prepared
from viral.data.reviews import ReviewFields, read_review_interactions
from viral.data.split import LAST_OUT_RULE, SPLIT_RULE, TIMESTAMP_RULE, last_out_split, per_user_split, timestamp_split
from viral.data.tables import InteractionColumns, locate_row, read_interaction_table
from viral.params import Params
from viral.run_report import seconds_since, write_run_report
from viral.stage import StageError

log = logging.getLogger(__name__)

TIMED_SPLITS = ("last_out", "timestamp")


@dataclass(frozen=True)
class Release:
    """How to read one Amazon release's review and meta files."""

    reviews_name: Callable[[str], str]
    meta_name: Callable[[str], str]
    fields: ReviewFields
    read_meta: Callable[..., pd.DataFrame]
    keep: str  # which of a repeated (user, item) pair stays: "first" (file order) | "earliest"
    time_unit: str


RELEASES = {
    "amazon2014": Release(amazon.reviews_name, amazon.meta_name, amazon.REVIEW_FIELDS, amazon.read_meta, "first", "s"),
    "amazon2018": Release(amazon2018.reviews_name, amazon2018.meta_name, amazon2018.REVIEW_FIELDS,
                          amazon2018.read_meta, "first", "s"),
    "amazon2023": Release(amazon2023.reviews_name, amazon2023.meta_name, amazon2023.REVIEW_FIELDS,
                          amazon2023.read_meta, "earliest", "ms"),
}
RELEASES["synthetic"] = RELEASES["amazon2014"]  # the synthetic files are in the 2014 formats


def raw_paths(raw_dir: Path, cat: str, release: str = "amazon2014") -> tuple[Path, Path]:
    spec = RELEASES[release]
    return raw_dir / spec.reviews_name(cat), raw_dir / spec.meta_name(cat)


def kcore_reviews(reviews: pd.DataFrame, k: int) -> pd.DataFrame:
    users, _ = pd.factorize(reviews["reviewerID"])
    items, _ = pd.factorize(reviews["asin"])
    return reviews[kcore_mask(users, items, k)].reset_index(drop=True)


def _counts(prepared: Prepared) -> dict[str, Any]:
    inter = prepared.interactions
    train = inter["split"] == 0
    return {
        "users": len(prepared.users),
        "items": len(prepared.items),
        "interactions": len(inter),
        "splits": split_counts(inter["split"]),
        "items_without_train": len(prepared.items) - len(np.unique(inter.loc[train, "itemID"])),
        "users_without_train": len(prepared.users) - len(np.unique(inter.loc[train, "userID"])),
    }


ItemsReader = Callable[[pd.Series], tuple[pd.DataFrame, dict[str, Any]]]


def assemble(kept: RawInteractions, labels: np.ndarray, user_ids: np.ndarray, user_codes: np.ndarray,
             read_items: ItemsReader) -> tuple[Prepared, dict[str, Any]]:
    """The prepared tables of the kept interactions (`user_ids`: their userIDs, `user_codes`: the
    user code of each userID), items numbered by first appearance."""
    item_ids, item_codes = first_appearance_ids(kept.item)
    interactions = pd.DataFrame({
        "userID": user_ids,
        "itemID": item_ids,
        "split": labels.astype(np.int8),
        "rating": kept.rating.astype(np.float32),
        "timestamp": kept.timestamp if kept.timestamp_known.all() else kept.timestamps_or_none(),
    })
    items, item_stats = read_items(pd.Series(key_strings(kept.item_keys, item_codes), dtype=object))
    users = pd.DataFrame({"userID": np.arange(len(user_codes)),
                          "reviewerID": np.asarray(key_strings(kept.user_keys, user_codes), dtype=str)})
    prepared = Prepared(interactions.sort_values("userID", kind="stable", ignore_index=True), items, users)
    return prepared, item_stats


def split_labels(split: SplitSettings, user_ids: np.ndarray, kept: RawInteractions, seed: int) -> tuple[np.ndarray, str]:
    """The split label of every kept interaction, and the rule's description."""
    if split.split == "random":
        return per_user_split(user_ids, seed), SPLIT_RULE
    if split.split == "last_out":
        return last_out_split(user_ids, kept.timestamp), LAST_OUT_RULE
    if split.split == "timestamp":
        rule = f"{TIMESTAMP_RULE} (valid_from={split.valid_from}, test_from={split.test_from})"
        return timestamp_split(kept.timestamp, split.valid_from, split.test_from), rule
    raise ValueError(f"split {split.split!r} is not computed from interactions")


def prepare_interactions(raw: RawInteractions, split: SplitSettings, k: int, seed: int, read_items: ItemsReader,
                         keep: str, source_file: Path) -> tuple[Prepared, dict[str, Any]]:
    """Dedupe, k-core, MMRec ids and the split of raw interactions; items from `read_items`.
    (Each intermediate copy is dropped as soon as the next exists: pass `raw` without keeping it.)"""
    if not len(raw):
        raise StageError(f"{source_file}: no interactions (empty file?)")
    if split.split in TIMED_SPLITS and not raw.timestamp_known.all():
        raise StageError(f"{source_file}: split {split.split} needs a timestamp on every interaction")
    n_raw, bad_lines = len(raw), raw.bad_lines
    unique = raw.take(unique_pairs(raw, keep))
    del raw
    n_unique = len(unique)
    kept = unique.take(kcore_mask(unique.user, unique.item, k))
    del unique
    if not len(kept):
        raise StageError(f"{source_file}: no interaction survives the {k}-core")
    user_ids, user_codes = first_appearance_ids(kept.user)
    labels, rule = split_labels(split, user_ids, kept, seed)
    prepared, item_stats = assemble(kept, labels, user_ids, user_codes, read_items)
    stats = {
        "split": split.split,
        "split_rule": rule,
        "seed": seed if split.split == "random" else None,
        "k_core": k,
        **_counts(prepared),
        "raw_interactions": n_raw,
        "bad_lines_skipped": bad_lines,
        "duplicate_pairs_dropped": n_raw - n_unique,
        "duplicates_kept": keep,
        "removed_by_kcore": n_unique - len(kept),
        **item_stats,
    }
    return prepared, stats


def _meta_reader(release: Release, meta_path: Path, bad_lines: str) -> ItemsReader:
    def read(asins: pd.Series) -> tuple[pd.DataFrame, dict[str, Any]]:
        meta = release.read_meta(meta_path, bad_lines, asins=set(asins))
        items, without_meta = items_with_meta(asins, meta)
        return items, {"items_without_meta": without_meta, "bad_meta_lines_skipped": meta.attrs.get("bad_lines", 0)}

    return read


def prepare_from_raw(reviews_path: Path, meta_path: Path, config: PrepareConfig, seed: int,
                     release: str = "amazon2014", split: SplitSettings = SplitSettings()
                     ) -> tuple[Prepared, dict[str, Any]]:
    """Prepare an Amazon review file (and its meta file) of `release` with `split`."""
    spec = RELEASES[release]
    fields = dataclasses.replace(spec.fields, timestamp_required=spec.fields.timestamp_required
                                 or split.split in TIMED_SPLITS)
    prepared, stats = prepare_interactions(read_review_interactions(reviews_path, fields, config.bad_lines), split,
                                           config.k_core, seed, _meta_reader(spec, meta_path, config.bad_lines),
                                           spec.keep, reviews_path)
    stats["raw_reviews"] = stats.pop("raw_interactions")
    stats["bad_lines_skipped"] = {"reviews": stats["bad_lines_skipped"], "meta": stats.pop("bad_meta_lines_skipped")}
    return prepared, {"reviews_file": str(reviews_path), "timestamp_unit": spec.time_unit, **stats}


def prepare_published(paths: dict[str, Path], meta_path: Path, config: PrepareConfig
                      ) -> tuple[Prepared, dict[str, Any]]:
    """Adopt the Amazon 2023 published split files as they are (ids by first appearance over train,
    valid, test); a (user, item) pair repeated across them keeps its first row."""
    raw, labels = amazon2023.read_benchmark(paths)
    rows = unique_pairs(raw, "first")
    kept = raw.take(rows)
    user_ids, user_codes = first_appearance_ids(kept.user)
    prepared, item_stats = assemble(kept, labels[rows], user_ids, user_codes,
                                    _meta_reader(RELEASES["amazon2023"], meta_path, config.bad_lines))
    item_stats.pop("bad_meta_lines_skipped")
    return prepared, {"split_rule": "adopted from the published Amazon 2023 5-core split files",
                      "split_files": {part: str(path) for part, path in paths.items()}, "timestamp_unit": "ms",
                      **_counts(prepared), "duplicate_pairs_dropped": len(raw) - len(rows), **item_stats}


def _pairs(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["reviewerID", "asin"]].drop_duplicates()


def _example(values) -> str:
    values = list(values)
    return f" (e.g. {values[0]!r})" if values else ""


def _unique_reviews(reviews: pd.DataFrame) -> pd.DataFrame:
    """Reviews with one row per (reviewer, item), the first in file order (a pair is one interaction)."""
    return reviews.drop_duplicates(["reviewerID", "asin"], keep="first", ignore_index=True)


def check_against_raw(folder: MMRecFolder, reviews: pd.DataFrame, k: int) -> list[str]:
    """Mismatches between an MMRec folder and the raw reviews, one phrase each (empty when consistent).

    Checked: every mapped asin occurs in the reviews; every mapped user is a reviewer; and the
    interaction set equals the raw k-core (by (reviewer, asin) pairs with a user map, else per-item
    interaction counts).
    """
    unique = _unique_reviews(reviews)
    problems = []
    missing = folder.items.loc[~folder.items["asin"].isin(unique["asin"]), "asin"]
    if len(missing):
        problems.append(f"{len(missing)} asins of the item map are not in the reviews{_example(missing)}")
    core = kcore_reviews(unique, k)
    mapped = folder.inter.assign(asin=folder.items["asin"].to_numpy()[folder.inter["itemID"].to_numpy()])
    if folder.users is not None:
        unknown = folder.users.loc[~folder.users["reviewerID"].isin(unique["reviewerID"]), "reviewerID"]
        if len(unknown):
            problems.append(f"{len(unknown)} users of the user map never reviewed{_example(unknown)}")
        mapped["reviewerID"] = folder.users["reviewerID"].to_numpy()[mapped["userID"].to_numpy()]
        both = _pairs(mapped).merge(_pairs(core), how="outer", indicator=True)
        for side, where in (("left_only", f"{folder.name}.inter"), ("right_only", f"the raw {k}-core")):
            only = both[both["_merge"] == side]
            if len(only):
                examples = zip(only["reviewerID"], only["asin"])
                problems.append(f"{len(only)} interactions only in {where}{_example(examples)}")
    else:
        ours = mapped["asin"].value_counts()
        theirs = core["asin"].value_counts().reindex(ours.index, fill_value=0)
        differ = ours.index[ours.to_numpy() != theirs.to_numpy()]
        if len(differ):
            problems.append(f"{len(differ)} items have a different interaction count than in the raw "
                            f"{k}-core{_example(differ)}")
    return problems


def _ratings_from_raw(inter: pd.DataFrame, folder: MMRecFolder, reviews: pd.DataFrame) -> pd.DataFrame:
    """Fill rating/timestamp of the MMRec interactions from the raw reviews, matched by (reviewer, asin)."""
    keys = pd.DataFrame({
        "reviewerID": folder.users["reviewerID"].to_numpy()[inter["userID"].to_numpy()],
        "asin": folder.items["asin"].to_numpy()[inter["itemID"].to_numpy()],
    })
    raw = _unique_reviews(reviews)[["reviewerID", "asin", "overall", "unixReviewTime"]]
    found = keys.astype(str).merge(raw.astype({"reviewerID": str, "asin": str}), how="left", on=["reviewerID", "asin"])
    return inter.assign(rating=found["overall"].astype("float32").to_numpy(),
                        timestamp=found["unixReviewTime"].to_numpy())


def prepare_from_mmrec(mmrec_dir: Path, reviews_path: Path | None, meta_path: Path | None,
                       config: PrepareConfig, release: str = "amazon2014") -> tuple[Prepared, dict[str, Any]]:
    """Adopt an MMRec folder's split; raw files of `release`, when given, supply item text and ratings
    and the split is checked against them."""
    folder = read_folder(mmrec_dir)
    spec = RELEASES[release]
    inter = folder.inter.copy()
    if "rating" not in inter:
        inter["rating"] = np.float32("nan")
    if "timestamp" not in inter:
        inter["timestamp"] = pd.array([pd.NA] * len(inter), dtype="Int64")
    stats: dict[str, Any] = {"mmrec_dir": str(mmrec_dir), "inter_file": f"{folder.name}.inter",
                             "split_rule": "adopted from the MMRec .inter file", "checked_against_raw": False,
                             "mmrec_features": sorted(p.name for p in Path(mmrec_dir).glob("*_feat.npy"))}
    if reviews_path is not None:
        reviews = read_review_interactions(reviews_path, spec.fields, config.bad_lines).frame()
        problems = check_against_raw(folder, reviews, config.k_core)
        stats.update(checked_against_raw=True, raw_mismatches=problems)
        if problems:
            message = (f"{mmrec_dir} does not match the raw data {reviews_path}: " + "; ".join(problems))
            if config.mmrec_check == "error":
                raise StageError(message + " (set prepare.mmrec_check: warn to adopt the split anyway)")
            log.warning("%s", message)
        if folder.users is not None and inter["rating"].isna().all():
            inter = _ratings_from_raw(inter, folder, reviews)
    if meta_path is not None:
        meta = spec.read_meta(meta_path, config.bad_lines, asins=set(folder.items["asin"]))
        items, without_meta = items_with_meta(folder.items["asin"], meta)
        stats["items_without_meta"] = without_meta
    else:
        items = empty_items(folder.items["asin"])
        if folder.image_urls is not None:
            urls = folder.image_urls.set_index("itemID")["imUrl"]
            items["imUrl"] = urls.reindex(items["itemID"]).fillna("").to_numpy()
        stats["items_text"] = "none: no raw metadata, text fields are empty"
    if folder.users is not None:
        users = folder.users[["userID", "reviewerID"]]
    else:
        users = pd.DataFrame({"userID": np.arange(folder.n_users), "reviewerID": None})
    prepared = Prepared(inter.sort_values("userID", kind="stable", ignore_index=True), items, users)
    return prepared, {**stats, **_counts(prepared)}


def _require(path: Path) -> Path:
    if not path.is_file():
        found = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
        listing = f"; {path.parent} has: {', '.join(found)}" if found else ""
        raise StageError(f"{path}: not found (run the download stage first){listing}")
    return path


def prepare_custom(raw_dir: Path, dataset: Dataset, config: PrepareConfig, seed: int
                   ) -> tuple[Prepared, dict[str, Any]]:
    """A custom folder (imported into `raw_dir`): interactions and items files, see viral/data/custom.py."""
    settings = dataset.settings
    where = f"datasets.{dataset.name}.columns"
    names = settings.columns
    columns = InteractionColumns(names.user, names.item, names.rating, names.timestamp, where)
    interactions_path, items_path = _require(raw_dir / settings.interactions), _require(raw_dir / settings.items)
    raw = read_interaction_table(interactions_path, columns, config.bad_lines,
                                 timestamp_required=settings.split in TIMED_SPLITS)
    catalogue = custom.read_items(items_path, settings, where)
    keys = raw.item_keys.to_numpy(zero_copy_only=False)
    unknown = ~np.isin(keys, catalogue.index.to_numpy())
    if unknown.any():
        missing = set(keys[unknown])
        row = locate_row(interactions_path, columns, lambda user, item, stamp: item in missing)
        example = keys[np.flatnonzero(unknown)[0]]
        raise StageError(f"{interactions_path}: {row}: field {names.item!r}: item {example!r} is not in "
                         f"{items_path.name} ({int(unknown.sum())} such items)")

    def read_items(asins: pd.Series) -> tuple[pd.DataFrame, dict[str, Any]]:
        return custom.items_for(asins, catalogue), {"catalogue_items": len(catalogue)}

    prepared, stats = prepare_interactions(raw, settings, config.k_core, seed, read_items, "first", interactions_path)
    return prepared, {"interactions_file": str(interactions_path), "items_file": str(items_path), **stats}


def prepare_dataset(raw_dir: Path, dataset: Dataset, config: PrepareConfig, seed: int
                    ) -> tuple[Prepared, dict[str, Any]]:
    """The prepared tables and stats of a registry entry whose raw files are in `raw_dir`."""
    settings = dataset.settings
    if dataset.source == "mmrec":
        if not raw_dir.is_dir():
            raise StageError(f"{raw_dir}: not found (run the download stage first)")
        return prepare_from_mmrec(raw_dir, None, None, config)
    if dataset.source == "custom":
        return prepare_custom(raw_dir, dataset, config, seed)
    reviews_path, meta_path = raw_paths(raw_dir, dataset.category, dataset.source)
    if settings.split == "mmrec":
        return prepare_from_mmrec(raw_dir / MMREC_SPLIT_DIR, reviews_path if reviews_path.is_file() else None,
                                  meta_path if meta_path.is_file() else None, config, dataset.source)
    if settings.split in amazon2023.PUBLISHED:
        paths = {part: _require(raw_dir / amazon2023.benchmark_name(dataset.category, part))
                 for part in amazon2023.PARTS}
        return prepare_published(paths, _require(meta_path), config)
    return prepare_from_raw(_require(reviews_path), _require(meta_path), config, seed, dataset.source, settings)


def run_prepare(params: Params) -> None:
    dataset = params.dataset_config()
    raw_dir = Path("data/raw") / dataset.name
    start = time.perf_counter()
    prepared, stats = prepare_dataset(raw_dir, dataset, params.prepare, params.data_seed)
    stats = {"dataset": dataset.name, "source": dataset.source, **stats}
    write_prepared(Path("data/prepared") / dataset.name, prepared, stats)
    run = {"dataset": dataset.name, **{key: stats[key] for key in ("users", "items", "interactions", "splits")},
           "seconds": seconds_since(start)}
    write_run_report("prepare", run)
    log.info("prepared %s: %d users, %d items, %d interactions %s in %.1f s", dataset.name, run["users"],
             run["items"], run["interactions"], run["splits"], run["seconds"])
