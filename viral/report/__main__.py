"""python -m viral.report: collect the repository's finished DVC experiments and write the report.

    python -m viral.report [--out reports] [--exp NAME ...] [--all-commits | --rev REV ...] [--workspace]

Ends with one line of JSON (runs, rows, output files); a malformed or missing experiment stops it with
one line naming the experiment (exit status 1).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from viral.report.build import build_report
from viral.report.collect import CollectError, DvcRepository, collect, visual_features


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m viral.report", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="reports", help="output folder, replaced whole (default: reports)")
    parser.add_argument("--repo", default=".", help="the DVC repository (default: the current folder)")
    parser.add_argument("--exp", nargs="+", default=(), metavar="NAME", help="only these experiments")
    parser.add_argument("--all-commits", action="store_true", help="experiments of every commit, not only HEAD's")
    parser.add_argument("--rev", nargs="+", default=(), metavar="REV", help="experiments of these baseline commits")
    parser.add_argument("--workspace", action="store_true", help="also the workspace's own results (a `dvc repro`)")
    parser.add_argument("--no-embeddings", action="store_true", help="skip the visual embedding figure (t-SNE)")
    parser.add_argument("--tsne-items", type=int, default=2000, help="items per t-SNE panel (a seeded sample)")
    parser.add_argument("--category-level", type=int, default=-1,
                        help="which element of an item's first category path colours it (-1: the most specific)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    start = time.perf_counter()
    try:
        with DvcRepository(args.repo) as repository:
            runs = collect(repository, tuple(args.exp), args.all_commits, tuple(args.rev), args.workspace)
            if not runs:
                raise CollectError("no finished experiments (see `dvc exp show`; queue some with "
                                   "`python -m viral.report.sweep`)")
            features = [] if args.no_embeddings else visual_features(runs, repository.fetch, args.category_level)
        result = build_report(runs, args.out, features, args.tsne_items)
    except CollectError as err:
        print(f"error: report: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"report": args.out, "runs": len(runs), "rows": len(result["groups"]),
                      "comparisons": len(result["comparisons"]), "seconds": round(time.perf_counter() - start, 1),
                      "files": ["report.html", "report.md", "summary.json", "runs.csv"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
