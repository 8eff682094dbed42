"""Time and memory of the prepare step (download-free) on large synthetic raw files in the real formats.

    python benchmarks/prepare_scale.py [--source amazon2014] [--users 40000] [--items 24000] [--seed 0]
    python benchmarks/prepare_scale.py --source amazon2023 [--reviews 5000000] [--text-chars 300]
                                       [--check-reviews 1000000] [--seed 0]

amazon2014 (default): a Clothing-sized dataset (~40k users, 23k items, 280k interactions after the
5-core) in the 2014 formats; baseline in the same run: the k-core done the way MMRec's notebook does it
(pandas value_counts + isin, repeated until stable) against our `kcore_mask`.

amazon2023: `--reviews` review lines in the 2023 format (user_id, parent_asin, millisecond timestamps,
review text of about `--text-chars` characters, review images) plus a metadata file with more items
than are reviewed (features, description, images in several sizes, store, categories, details).
Prepare = stream the reviews, keep the earliest of repeated pairs, 5-core, ids, leave-last-out split,
read the metadata of the kept items, write Parquet. Then, on `--check-reviews` lines, whether memory
follows the raw file or the kept interactions: the same interactions with review text 4x longer
(ours), and a baseline that loads the reviews the common way (`pandas.read_json(lines=True)`).

Each prepare runs in its own child process, which reports its own peak RSS (VmHWM of /proc/self/status:
unlike getrusage's ru_maxrss it is not inherited from the parent across fork and exec). The last line is
JSON.
"""
from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The child's own high-water mark of resident memory (Linux).
PEAK = """
def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
"""

CHILD_2014 = PEAK + """
import json, sys, time
from pathlib import Path
from viral.data.config import PrepareConfig
from viral.data.prepare import prepare_from_raw
from viral.data.prepared import write_prepared
raw = Path(sys.argv[1])
start = time.perf_counter()
prepared, stats = prepare_from_raw(raw / "reviews_Bench_5.json.gz", raw / "meta_Bench.json.gz", PrepareConfig(), 999)
write_prepared(raw / "prepared", prepared, stats)
print(json.dumps({"seconds": time.perf_counter() - start, "stats": stats,
                  "peak_rss_mb": peak_mb()}))
"""

CHILD_2023 = PEAK + """
import json, sys, time
from pathlib import Path
from viral.data.config import PrepareConfig
from viral.data.datasets import parse_datasets
from viral.data.prepare import prepare_dataset
from viral.data.prepared import write_prepared
raw = Path(sys.argv[1])
dataset = parse_datasets({"bench": {"source": "amazon2023", "category": "Books", "split": "last_out"}})["bench"]
start = time.perf_counter()
prepared, stats = prepare_dataset(raw, dataset, PrepareConfig(), 999)
write_prepared(raw / "prepared", prepared, stats)
print(json.dumps({"seconds": time.perf_counter() - start, "stats": stats,
                  "peak_rss_mb": peak_mb()}))
"""

# The common way of loading a review file: every field of every line into one DataFrame.
CHILD_PANDAS = PEAK + """
import json, sys, time
import pandas as pd
start = time.perf_counter()
frame = pd.read_json(sys.argv[1], lines=True, compression="gzip")
print(json.dumps({"seconds": time.perf_counter() - start, "rows": len(frame),
                  "peak_rss_mb": peak_mb()}))
"""


def run_child(code: str, *args: str) -> dict:
    child = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    if child.returncode:
        raise SystemExit(f"child failed: {child.stderr.strip().splitlines()[-1]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def generate_2014(folder: Path, n_users: int, n_items: int, seed: int) -> int:
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


def interactions_2023(n_reviews: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(users, items, millisecond times) of `n_reviews` reviews in random order, and the number of items:
    user activity long-tailed (Zipf 2.4, at most 300: most users review once or twice), n/20 items with a
    popularity skew; repeated (user, item) pairs occur as they happen. About 30 % of the reviews survive
    the 5-core with ~13 per kept user, the proportions of the real Books 5-core (9.5M of 29.5M)."""
    rng = np.random.default_rng(seed)
    counts = np.minimum(rng.zipf(2.4, n_reviews), 300)
    n_users = int(np.searchsorted(np.cumsum(counts), n_reviews)) + 1
    users = np.repeat(np.arange(n_users), counts[:n_users])[:n_reviews]
    users = rng.permutation(users)
    n_items = max(n_reviews // 20, 10)
    popularity = 1.0 / (np.arange(n_items) + 20.0) ** 0.8
    items = rng.choice(n_items, size=n_reviews, p=popularity / popularity.sum())
    times = 1_500_000_000_000 + rng.integers(0, 2 * 10**11, n_reviews)
    return users, items, times, n_items


def write_2023(folder: Path, users, items, times, n_items: int, text_chars: int, seed: int, chunk: int = 200_000
               ) -> dict:
    """The review file and the metadata file (1.5x the reviewed items) of the 2023 format; sizes."""
    rng = np.random.default_rng(seed + 1)
    words = "great quality fits well would buy again the color is lovely and it arrived quickly ".split()
    text = (" ".join(words) * (text_chars // 80 + 1))[:text_chars]
    path = folder / "Books.jsonl.gz"
    raw_bytes = 0
    with gzip.open(path, "wt", compresslevel=1) as stream:
        for start in range(0, len(users), chunk):
            stop = min(start + chunk, len(users))
            ratings = rng.integers(1, 6, stop - start)
            lines = []
            for k, (u, i, t, r) in enumerate(zip(users[start:stop].tolist(), items[start:stop].tolist(),
                                                 times[start:stop].tolist(), ratings.tolist())):
                images = ('[{"small_image_url": "https://m.media-amazon.com/images/I/s.jpg", "medium_image_url": '
                          '"https://m.media-amazon.com/images/I/m.jpg", "large_image_url": '
                          '"https://m.media-amazon.com/images/I/l.jpg", "attachment_type": "IMAGE"}]'
                          if k % 17 == 0 else "[]")
                lines.append(f'{{"rating": {r}.0, "title": "Review title {k % 97}", "text": "{text[k % 40:]}", '
                             f'"images": {images}, "asin": "V{i:09d}", "parent_asin": "P{i:09d}", '
                             f'"user_id": "AG{u:026d}", "timestamp": {t}, "helpful_vote": {k % 5}, '
                             f'"verified_purchase": {"true" if k % 3 else "false"}}}\n')
            block = "".join(lines)
            raw_bytes += len(block)
            stream.write(block)
    meta = folder / "meta_Books.jsonl.gz"
    with gzip.open(meta, "wt", compresslevel=1) as stream:
        for i in range(int(n_items * 1.5)):
            record = {"main_category": "Books", "title": f"Book {i}", "average_rating": 4.2, "rating_number": 17,
                      "features": ["Paperback", f"Edition {i % 9}"], "description": [text[:200]],
                      "price": 12.5, "images": [{"thumb": f"https://m/{i}_t.jpg", "large": f"https://m/{i}_l.jpg",
                                                  "variant": "MAIN", "hi_res": f"https://m/{i}_h.jpg"}],
                      "videos": [], "store": "Press", "categories": ["Books", "Fiction"],
                      "details": {"Publisher": "Press", "Language": "English"}, "parent_asin": f"P{i:09d}",
                      "bought_together": None}
            stream.write(json.dumps(record) + "\n")
    return {"reviews_gzip_mb": round(path.stat().st_size / 1e6, 1), "reviews_raw_mb": round(raw_bytes / 1e6, 1),
            "meta_gzip_mb": round(meta.stat().st_size / 1e6, 1)}


def bench_2014(args) -> dict:
    from viral.data.amazon import read_reviews
    from viral.data.kcore import kcore_mask

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        start = time.perf_counter()
        n_reviews = generate_2014(folder, args.users, args.items, args.seed)
        generate_s = time.perf_counter() - start
        print(f"generated {n_reviews} reviews in {generate_s:.1f} s", file=sys.stderr)
        result = run_child(CHILD_2014, str(folder))
        stats = result["stats"]
        print(f"prepare: {result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB, {stats['users']} users, "
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
    return {
        "source": "amazon2014",
        "raw_reviews": n_reviews,
        "users": stats["users"],
        "items": stats["items"],
        "interactions": stats["interactions"],
        "splits": stats["splits"],
        "generate_seconds": round(generate_s, 2),
        "prepare_seconds": round(result["seconds"], 2),
        "prepare_interactions_per_s": round(stats["raw_reviews"] / result["seconds"]),
        "prepare_peak_rss_mb": round(result["peak_rss_mb"], 1),
        "peak_memory_method": "VmHWM (/proc/self/status) of the prepare child process",
        "kcore_seconds": round(ours_s, 4),
        "kcore_baseline_pandas_seconds": round(baseline_s, 4),
        "kcore_speedup_vs_pandas": round(baseline_s / ours_s, 1),
    }


def prepare_2023(folder: Path, users, items, times, n_items, text_chars, seed) -> tuple[dict, dict]:
    start = time.perf_counter()
    sizes = write_2023(folder, users, items, times, n_items, text_chars, seed)
    print(f"generated {len(users)} 2023 reviews ({sizes}) in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    result = run_child(CHILD_2023, str(folder))
    stats = result["stats"]
    print(f"prepare: {result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB, {stats['users']} users, "
          f"{stats['items']} items, {stats['interactions']} interactions {stats['splits']}", file=sys.stderr)
    return result, sizes


def bench_2023(args) -> dict:
    users, items, times, n_items = interactions_2023(args.reviews, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        main, sizes = prepare_2023(Path(tmp), users, items, times, n_items, args.text_chars, args.seed)
    stats = main["stats"]
    out = {
        "source": "amazon2023",
        "raw_reviews": int(args.reviews),
        **sizes,
        "users": stats["users"],
        "items": stats["items"],
        "interactions": stats["interactions"],
        "splits": stats["splits"],
        "duplicate_pairs_dropped": stats["duplicate_pairs_dropped"],
        "prepare_seconds": round(main["seconds"], 2),
        "prepare_reviews_per_s": round(args.reviews / main["seconds"]),
        "prepare_peak_rss_mb": round(main["peak_rss_mb"], 1),
        "peak_memory_method": "VmHWM (/proc/self/status) of each prepare child process",
    }
    if args.check_reviews:
        n = args.check_reviews
        small = interactions_2023(n, args.seed)
        runs = {}
        for label, chars in (("text", args.text_chars), ("text_x4", 4 * args.text_chars)):
            with tempfile.TemporaryDirectory() as tmp:
                runs[label] = prepare_2023(Path(tmp), *small, chars, args.seed)
                if label == "text":
                    baseline = run_child(CHILD_PANDAS, str(Path(tmp) / "Books.jsonl.gz"))
                    print(f"pandas.read_json: {baseline['seconds']:.1f} s, peak RSS {baseline['peak_rss_mb']:.0f} MB",
                          file=sys.stderr)
        (ours, sizes_1), (longer, sizes_4) = runs["text"], runs["text_x4"]
        out["check"] = {
            "reviews": n,
            "interactions_kept": ours["stats"]["interactions"],
            "raw_mb": sizes_1["reviews_raw_mb"],
            "raw_mb_text_x4": sizes_4["reviews_raw_mb"],
            "peak_rss_mb": round(ours["peak_rss_mb"], 1),
            "peak_rss_mb_text_x4": round(longer["peak_rss_mb"], 1),
            "prepare_seconds": round(ours["seconds"], 2),
            "baseline_pandas_read_json_seconds": round(baseline["seconds"], 2),
            "baseline_pandas_read_json_peak_rss_mb": round(baseline["peak_rss_mb"], 1),
            "peak_rss_ratio_baseline_over_ours": round(baseline["peak_rss_mb"] / ours["peak_rss_mb"], 1),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", choices=("amazon2014", "amazon2023"), default="amazon2014")
    parser.add_argument("--users", type=int, default=40000, help="amazon2014: users")
    parser.add_argument("--items", type=int, default=24000, help="amazon2014: items")
    parser.add_argument("--reviews", type=int, default=5_000_000, help="amazon2023: review lines")
    parser.add_argument("--text-chars", type=int, default=300, help="amazon2023: review text length")
    parser.add_argument("--check-reviews", type=int, default=1_000_000,
                        help="amazon2023: size of the raw-size check and the pandas baseline (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    result = bench_2014(args) if args.source == "amazon2014" else bench_2023(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
