"""Export prepared data (and features) as an MMRec data folder, so MMRec users can run our artifacts.

    python -m viral.data.mmrec_export --prepared data/prepared/baby --features data/features/baby \
        --out exports/baby [--name baby]

Writes `<name>.inter` (userID, itemID, rating, timestamp, x_label; tab-separated, MMRec's 5-column
version), `i_id_mapping.csv`, `u_id_mapping.csv` (when reviewer ids are known), `<name>_url.csv`,
and `text_feat.npy` / `image_feat.npy` from `text.parquet` / `visual.parquet` when present.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from viral.data.mmrec import IMAGE_FEATURES, ITEM_MAP, SPLIT_COLUMN, TEXT_FEATURES, USER_MAP
from viral.data.prepared import load_prepared, load_users
from viral.io import atomic_dir

FEATURE_FILES = {"text.parquet": TEXT_FEATURES, "visual.parquet": IMAGE_FEATURES}


def export_mmrec(prepared_dir: str | Path, features_dir: str | Path | None, out_dir: str | Path,
                 name: str | None = None) -> list[str]:
    """Write the MMRec folder `out_dir` (replaced as a whole); returns the file names written."""
    from viral.encode.store import read_features

    prepared_dir, out_dir = Path(prepared_dir), Path(out_dir)
    name = name or prepared_dir.name
    interactions, items = load_prepared(prepared_dir)
    users = load_users(prepared_dir)
    features = {}
    if features_dir is not None:
        for source, target in FEATURE_FILES.items():
            path = Path(features_dir) / source
            if path.is_file():
                matrix, _ = read_features(path)
                if matrix.shape[0] != len(items):
                    raise ValueError(f"{path}: {matrix.shape[0]} rows, but {prepared_dir} has {len(items)} items")
                features[target] = matrix
    written = []
    with atomic_dir(out_dir) as tmp:
        inter = interactions.rename(columns={"split": SPLIT_COLUMN})
        inter = inter[["userID", "itemID", "rating", "timestamp", SPLIT_COLUMN]]
        inter.to_csv(tmp / f"{name}.inter", sep="\t", index=False)
        items[["asin", "itemID"]].to_csv(tmp / ITEM_MAP, sep="\t", index=False)
        items[["itemID", "asin", "imUrl"]].to_csv(tmp / f"{name}_url.csv", index=False)
        written += [f"{name}.inter", ITEM_MAP, f"{name}_url.csv"]
        if users["reviewerID"].notna().all():
            users.rename(columns={"reviewerID": "user_id"})[["user_id", "userID"]].to_csv(
                tmp / USER_MAP, sep="\t", index=False)
            written.append(USER_MAP)
        for target, matrix in features.items():
            np.save(tmp / target, np.ascontiguousarray(matrix, dtype=np.float32))
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m viral.data.mmrec_export", description=__doc__.split("\n")[0])
    parser.add_argument("--prepared", required=True, help="prepared folder, e.g. data/prepared/baby")
    parser.add_argument("--features", default=None, help="features folder with text.parquet / visual.parquet")
    parser.add_argument("--out", required=True, help="MMRec data folder to write (replaced as a whole)")
    parser.add_argument("--name", default=None, help="dataset name of <name>.inter (default: the prepared folder's name)")
    args = parser.parse_args(argv)
    try:
        written = export_mmrec(args.prepared, args.features, args.out, args.name)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {', '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
