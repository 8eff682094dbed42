"""The prepare stage: raw Amazon files -> 5-core, MMRec ids and split -> Parquet (docs/artifacts.md).

Two sources of the split:
- `prepare.split: random`: iterative k-core, ids in order of first appearance (as MMRec's
  `pd.unique`), then MMRec's per-user rule with our seed;
- `prepare.split: mmrec_file`: adopt an MMRec folder's `.inter` exactly; when the raw files are
  present they supply item text and ratings, and the split is checked against them.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from viral.data import amazon
from viral.data.config import PrepareConfig
from viral.data.kcore import kcore_mask
from viral.data.mmrec import MMRecFolder, read_folder
from viral.data.prepared import Prepared, empty_items, items_with_meta, split_counts, write_prepared
from viral.data.split import SPLIT_RULE, per_user_split
from viral.params import Params
from viral.run_report import seconds_since, write_run_report
from viral.stage import StageError

log = logging.getLogger(__name__)


def raw_paths(raw_dir: Path, cat: str) -> tuple[Path, Path]:
    return raw_dir / amazon.reviews_name(cat), raw_dir / amazon.meta_name(cat)


def _unique_reviews(reviews: pd.DataFrame) -> pd.DataFrame:
    """Reviews with one row per (reviewer, item), the first in file order (a pair is one interaction)."""
    return reviews.drop_duplicates(["reviewerID", "asin"], keep="first", ignore_index=True)


def kcore_reviews(reviews: pd.DataFrame, k: int) -> pd.DataFrame:
    users, _ = pd.factorize(reviews["reviewerID"])
    items, _ = pd.factorize(reviews["asin"])
    return reviews[kcore_mask(users, items, k)].reset_index(drop=True)


def _counts(prepared: Prepared) -> dict[str, Any]:
    inter = prepared.interactions
    train_items = np.unique(inter.loc[inter["split"] == 0, "itemID"])
    return {
        "users": len(prepared.users),
        "items": len(prepared.items),
        "interactions": len(inter),
        "splits": split_counts(inter["split"]),
        "items_without_train": len(prepared.items) - len(train_items),
    }


def prepare_from_raw(reviews_path: Path, meta_path: Path, config: PrepareConfig, seed: int
                     ) -> tuple[Prepared, dict[str, Any]]:
    reviews = amazon.read_reviews(reviews_path, config.bad_lines)
    unique = _unique_reviews(reviews)
    kept = kcore_reviews(unique, config.k_core)
    if kept.empty:
        raise StageError(f"{reviews_path}: no interaction survives the {config.k_core}-core")
    user_ids, reviewer_ids = pd.factorize(kept["reviewerID"])
    item_ids, asins = pd.factorize(kept["asin"])
    interactions = pd.DataFrame({
        "userID": user_ids.astype(np.int64),
        "itemID": item_ids.astype(np.int64),
        "split": per_user_split(user_ids, seed),
        "rating": kept["overall"].astype("float32").to_numpy(),
        "timestamp": kept["unixReviewTime"].to_numpy(),
    })
    meta = amazon.read_meta(meta_path, config.bad_lines, asins=set(asins))
    items, without_meta = items_with_meta(pd.Series(asins), meta)
    users = pd.DataFrame({"userID": np.arange(len(reviewer_ids)), "reviewerID": np.asarray(reviewer_ids, str)})
    prepared = Prepared(interactions.sort_values("userID", kind="stable", ignore_index=True), items, users)
    stats = {
        "source": "raw",
        "reviews_file": str(reviews_path),
        "split_rule": SPLIT_RULE,
        "seed": seed,
        "k_core": config.k_core,
        **_counts(prepared),
        "raw_reviews": len(reviews),
        "bad_lines_skipped": {"reviews": reviews.attrs.get("bad_lines", 0), "meta": meta.attrs.get("bad_lines", 0)},
        "duplicate_pairs_dropped": len(reviews) - len(unique),
        "removed_by_kcore": len(unique) - len(kept),
        "items_without_meta": without_meta,
    }
    return prepared, stats


def _pairs(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["reviewerID", "asin"]].drop_duplicates()


def _example(values) -> str:
    values = list(values)
    return f" (e.g. {values[0]!r})" if values else ""


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
                       config: PrepareConfig) -> tuple[Prepared, dict[str, Any]]:
    folder = read_folder(mmrec_dir)
    inter = folder.inter.copy()
    if "rating" not in inter:
        inter["rating"] = np.float32("nan")
    if "timestamp" not in inter:
        inter["timestamp"] = pd.array([pd.NA] * len(inter), dtype="Int64")
    stats: dict[str, Any] = {"source": "mmrec_file", "mmrec_dir": str(mmrec_dir), "inter_file": f"{folder.name}.inter",
                             "split_rule": "adopted from the MMRec .inter file", "checked_against_raw": False,
                             "mmrec_features": sorted(p.name for p in Path(mmrec_dir).glob("*_feat.npy"))}
    if reviews_path is not None:
        reviews = amazon.read_reviews(reviews_path, config.bad_lines)
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
        meta = amazon.read_meta(meta_path, config.bad_lines, asins=set(folder.items["asin"]))
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


def run_prepare(params: Params) -> None:
    config = params.prepare
    cat = amazon.category(params.dataset, params.download.synthetic.category)
    raw_dir = Path("data/raw") / params.dataset
    reviews_path, meta_path = raw_paths(raw_dir, cat)
    start = time.perf_counter()
    if config.split == "mmrec_file":
        if not config.mmrec_dir:
            raise StageError("prepare.mmrec_dir: required when prepare.split is mmrec_file")
        prepared, stats = prepare_from_mmrec(
            Path(config.mmrec_dir),
            reviews_path if reviews_path.is_file() else None,
            meta_path if meta_path.is_file() else None,
            config,
        )
    else:
        if not reviews_path.is_file():
            raise StageError(f"{reviews_path}: not found (run the download stage first)")
        prepared, stats = prepare_from_raw(reviews_path, meta_path, config, params.data_seed)
    stats["dataset"] = params.dataset
    write_prepared(Path("data/prepared") / params.dataset, prepared, stats)
    run = {"dataset": params.dataset, **{key: stats[key] for key in ("users", "items", "interactions", "splits")},
           "seconds": seconds_since(start)}
    write_run_report("prepare", run)
    log.info("prepared %s: %d users, %d items, %d interactions %s in %.1f s", params.dataset, run["users"],
             run["items"], run["interactions"], run["splits"], run["seconds"])
