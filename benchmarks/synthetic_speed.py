"""Time the synthetic generator at the default size and the Amazon raw readers on its files.

    python benchmarks/synthetic_speed.py [--meta-lines 50000] [--wanted 0.1] [--seed 999]

1. `generate` with the default SyntheticConfig (what `dvc repro` runs for dataset=synthetic).
2. `read_reviews` on the generated reviews file.
3. `read_meta` on a real-sized metadata file (Baby's raw meta has ~71k lines, of which ~7k items survive
   5-core), parsed whole (the baseline) and restricted to the wanted asins (`asins=`), which skips the
   `ast.literal_eval` of unwanted lines; the ratio is measured in the same run.
Peak memory is the process's ru_maxrss (resource.getrusage). The machine is shared: timings are noisy.
The last line of output is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import gzip
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from viral.data import amazon  # noqa: E402
from viral.data.config import SyntheticConfig  # noqa: E402
from viral.data.synthetic import generate  # noqa: E402


def real_like_meta(path: Path, n: int, rng: np.random.Generator) -> list[str]:
    """A meta file shaped like the real one (related lists, salesRank); returns its asins."""
    asins = [f"B{index:09d}" for index in range(n)]
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        for asin in asins:
            related = {"also_bought": [asins[j] for j in rng.integers(0, n, size=20)],
                       "bought_together": [asins[j] for j in rng.integers(0, n, size=2)]}
            record = {"asin": asin, "description": "Soft and washable. " * int(rng.integers(1, 12)),
                      "title": f"Item {asin}", "imUrl": f"http://ecx.images-amazon.com/images/I/{asin}.jpg",
                      "related": related, "salesRank": {"Baby": int(rng.integers(1, 10**6))},
                      "categories": [["Baby", "Feeding"]], "price": float(rng.integers(100, 5000)) / 100,
                      "brand": "Acme"}
            stream.write(repr(record) + "\n")
    return asins


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meta-lines", type=int, default=50000)
    parser.add_argument("--wanted", type=float, default=0.1, help="share of meta asins the reviews mention")
    parser.add_argument("--seed", type=int, default=999)
    args = parser.parse_args()
    config = SyntheticConfig()
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "synthetic"
        report, generate_s = timed(generate, out, config, args.seed)
        print(f"generate: {report['users']} users, {report['items']} items, {report['interactions']} reviews "
              f"in {generate_s:.2f} s")
        reviews, reviews_s = timed(amazon.read_reviews, out / amazon.reviews_name(config.category))
        print(f"read_reviews: {len(reviews)} lines in {reviews_s:.3f} s")

        meta_path = Path(tmp) / "meta_Big.json.gz"
        asins = real_like_meta(meta_path, args.meta_lines, rng)
        wanted = set(rng.choice(asins, size=int(len(asins) * args.wanted), replace=False).tolist())
        full, full_s = timed(amazon.read_meta, meta_path)
        subset, subset_s = timed(amazon.read_meta, meta_path, asins=wanted)
        assert len(full) == args.meta_lines and set(subset["asin"]) == wanted
        print(f"read_meta: all {len(full)} lines in {full_s:.2f} s; {len(subset)} wanted in {subset_s:.2f} s")
    figures = {
        "generate_seconds": round(generate_s, 3),
        "generate_images_per_s": round(report["items"] / generate_s, 1),
        "generate_reviews": report["interactions"],
        "read_reviews_lines_per_s": round(len(reviews) / reviews_s, 1),
        "read_meta_lines": args.meta_lines,
        "read_meta_all_lines_per_s": round(args.meta_lines / full_s, 1),
        "read_meta_wanted_share": args.wanted,
        "read_meta_wanted_seconds": round(subset_s, 3),
        "read_meta_speedup_vs_all": round(full_s / subset_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_memory_method": "resource.getrusage ru_maxrss (whole process)",
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
