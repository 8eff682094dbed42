"""Prepare a Clothing-sized synthetic Amazon dataset (~40k users, 23k items, 280k interactions after the 5-core) and time it.

    python benchmarks/prepare_scale.py [--users 40000] [--items 23000] [--seed 0]

Raw files are generated quickly in the real 2014 formats (JSON review lines, python-literal meta lines;
no images) into a temporary folder. The prepare step (read, dedupe, 5-core, ids, split, meta join,
Parquet write) runs in a child process so its peak RSS (resource.getrusage RUSAGE_CHILDREN ru_maxrss)
is its own. Baseline in the same run: the k-core done the way MMRec's notebook does it (pandas
value_counts + isin filtering of the frame, repeated until stable) against our `kcore_mask`.
The last line is JSON.
"""
from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = """
import json, sys, time
from pathlib import Path
from viral.data.config import PrepareConfig
from viral.data.prepare import prepare_from_raw
from viral.data.prepared import write_prepared
raw = Path(sys.argv[1])
start = time.perf_counter()
prepared, stats = prepare_from_raw(raw / "reviews_Bench_5.json.gz", raw / "meta_Bench.json.gz", PrepareConfig(), 999)
write_prepared(raw / "prepared", prepared, stats)
print(json.dumps({"seconds": time.perf_counter() - start, "stats": stats}))
"""


def generate(folder: Path, n_users: int, n_items: int, seed: int) -> int:
    """Write reviews/meta with a popularity skew; returns the number of review lines."""
    rng = np.random.default_rng(seed)
    per_user = 5 + rng.poisson(2.2, n_users)
    popularity = 1.0 / (np.arange(n_items) + 200.0) ** 0.4  # mild skew: ~23k items survive the 5-core
    popularity /= popularity.sum()
    users = np.repeat(np.arange(n_users), per_user)
    items = rng.choice(n_items, size=len(users), p=popularity)
    order = rng.permutation(len(users))
    users, items = users[order], items[order]
    ratings = rng.integers(1, 6, len(users))
    times = 1_300_000_000 + rng.integers(0, 10**8, len(users))
    with gzip.open(folder / "reviews_Bench_5.json.gz", "wt", compresslevel=1) as stream:
        for u, i, r, t in zip(users.tolist(), items.tolist(), ratings.tolist(), times.tolist()):
            stream.write(f'{{"reviewerID": "A{u:013d}", "asin": "B{i:09d}", "reviewerName": "n", '
                         f'"helpful": [0, 0], "reviewText": "text", "overall": {r}.0, "summary": "s", '
                         f'"unixReviewTime": {t}, "reviewTime": "01 1, 2012"}}\n')
    with gzip.open(folder / "meta_Bench.json.gz", "wt", compresslevel=1) as stream:
        for i in range(n_items):
            stream.write(repr({"asin": f"B{i:09d}", "title": f"Item {i}", "brand": "Brand",
                               "description": "A description of the item.", "price": 9.99,
                               "categories": [["Clothing", "Women"]], "imUrl": f"http://x/{i}.jpg"}) + "\n")
    return len(users)


def pandas_kcore(frame: pd.DataFrame, k: int) -> int:
    """The notebook way: filter the frame by value_counts until stable; returns rows kept."""
    while True:
        user_counts = frame["reviewerID"].value_counts()
        item_counts = frame["asin"].value_counts()
        keep = frame["reviewerID"].isin(user_counts.index[user_counts >= k]) & frame["asin"].isin(
            item_counts.index[item_counts >= k])
        if keep.all():
            return len(frame)
        frame = frame[keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=40000)
    parser.add_argument("--items", type=int, default=24000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from viral.data.amazon import read_reviews
    from viral.data.kcore import kcore_mask

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        n_reviews = generate(folder, args.users, args.items, args.seed)
        generate_s = time.perf_counter() - start
        print(f"generated {n_reviews} reviews in {generate_s:.1f} s", file=sys.stderr)

        child = subprocess.run([sys.executable, "-c", CHILD, str(folder)], capture_output=True, text=True,
                               cwd=ROOT, check=True)
        result = json.loads(child.stdout.strip().splitlines()[-1])
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        stats = result["stats"]
        print(f"prepare: {result['seconds']:.1f} s, peak RSS {peak_mb:.0f} MB, {stats['users']} users, "
              f"{stats['items']} items, {stats['interactions']} interactions {stats['splits']}", file=sys.stderr)

        reviews = read_reviews(folder / "reviews_Bench_5.json.gz").drop_duplicates(["reviewerID", "asin"])
        start = time.perf_counter()
        baseline_rows = pandas_kcore(reviews, 5)
        baseline_s = time.perf_counter() - start
        start = time.perf_counter()
        users, _ = pd.factorize(reviews["reviewerID"])
        items, _ = pd.factorize(reviews["asin"])
        ours_rows = int(kcore_mask(users, items, 5).sum())
        ours_s = time.perf_counter() - start
        assert ours_rows == baseline_rows, (ours_rows, baseline_rows)
        print(f"k-core: ours {ours_s:.3f} s vs pandas notebook-style {baseline_s:.3f} s", file=sys.stderr)

    print(json.dumps({
        "raw_reviews": n_reviews,
        "users": stats["users"],
        "items": stats["items"],
        "interactions": stats["interactions"],
        "splits": stats["splits"],
        "generate_seconds": round(generate_s, 2),
        "prepare_seconds": round(result["seconds"], 2),
        "prepare_interactions_per_s": round(stats["raw_reviews"] / result["seconds"]),
        "prepare_peak_rss_mb": round(peak_mb, 1),
        "peak_memory_method": "resource.getrusage(RUSAGE_CHILDREN).ru_maxrss of the prepare child process",
        "kcore_seconds": round(ours_s, 4),
        "kcore_baseline_pandas_seconds": round(baseline_s, 4),
        "kcore_speedup_vs_pandas": round(baseline_s / ours_s, 1),
    }))


if __name__ == "__main__":
    main()
