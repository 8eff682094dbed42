"""Encode N synthetic item texts with our encode path and with a bare SentenceTransformer.encode call.

    python benchmarks/encode_speed.py [--n 5000] [--batch-size 64] [--rounds 1] [--device auto]

Both use the same loaded model, texts, batch size and normalisation; rounds alternate bare/ours and
the best round of each counts (the machine is shared, so timings are noisy). Our path also tokenizes
every text once to count truncations, which is the only work it adds. Peak memory is the process's
ru_maxrss (resource.getrusage). The last line of output is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from viral.encode.sbert import PACKAGED_MODEL, encode_texts, load_encoder, truncated_count  # noqa: E402
from viral.encode.text import item_text  # noqa: E402

WORDS = ("soft cotton bottle cup bowl bib hat sock ball backpack toddler infant newborn wooden silicone "
         "washable durable easy clean safe bpa free grip handle lid spill proof travel gift set pack "
         "comfortable warm breathable adjustable strap zipper pocket lightweight sturdy rounded edges").split()


def synthetic_texts(n: int, seed: int = 0) -> list[str]:
    """N item texts in MMRec's recipe: descriptions of 0-80 words, one in ten of 200-300 words (these
    exceed the model's 256 word pieces and get truncated)."""
    rng = np.random.default_rng(seed)

    def description_length() -> int:
        return int(rng.integers(200, 301)) if rng.random() < 0.1 else int(rng.integers(0, 81))

    def words(k: int) -> str:
        return " ".join(rng.choice(WORDS, size=k))

    return [item_text(words(rng.integers(2, 9)).title(), words(1).title(),
                      [["Baby", words(1).title()]], words(description_length())) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default=PACKAGED_MODEL)
    args = parser.parse_args()

    texts = synthetic_texts(args.n)
    start = time.perf_counter()
    model = load_encoder(args.model, args.device)
    load_s = time.perf_counter() - start
    model.encode(texts[:64], batch_size=args.batch_size)  # warm-up (allocator, kernels)

    bare_s, ours_s, ours = [], [], None
    for round_index in range(args.rounds):
        start = time.perf_counter()
        bare = model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True)
        bare_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        ours = encode_texts(model, texts, args.batch_size, normalize=True)
        ours_s.append(time.perf_counter() - start)
        print(f"round {round_index + 1}: bare {args.n / bare_s[-1]:.1f} texts/s, "
              f"ours {args.n / ours_s[-1]:.1f} texts/s")
    start = time.perf_counter()
    truncated_count(model, texts)  # the one step our path adds to a bare encode
    truncation_s = time.perf_counter() - start
    cosine = (ours.matrix * bare).sum(1) / (np.linalg.norm(ours.matrix, axis=1) * np.linalg.norm(bare, axis=1))
    best_bare, best_ours = min(bare_s), min(ours_s)
    figures = {
        "benchmark": "encode_speed",
        "texts": args.n,
        "batch_size": args.batch_size,
        "device": str(model.device),
        "model_load_s": round(load_s, 2),
        "bare_encode_s": round(best_bare, 2),
        "ours_s": round(best_ours, 2),
        "bare_texts_per_s": round(args.n / best_bare, 1),
        "ours_texts_per_s": round(args.n / best_ours, 1),
        "ours_vs_bare": round(best_bare / best_ours, 3),
        "truncation_count_s": round(truncation_s, 3),
        "truncation_count_share_of_ours": round(truncation_s / best_ours, 4),
        "truncated_share": ours.stats()["truncated_share"],
        "min_row_cosine_vs_bare": round(float(cosine.min()), 6),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_memory_method": "resource.getrusage ru_maxrss (whole process)",
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
