"""Does the synthetic dataset reward the visual modality? A content-only check from the generated files.

    python benchmarks/synthetic_signal.py [--seed 999] [--users 1500] [--items 500] [--holdout 0.2]

Generates the dataset, reads it back with the same readers the real data uses (never truth.json), and
scores items for each user by cosine similarity between bag-of-words item vectors and the user's
profile (the sum of the user's training items). Item vectors come from: the metadata text (title,
brand, description, categories), the title-guided descriptions, the plain descriptions, text + title-
guided, and the weak "original" .b features. A random baseline is measured in the same run. Each
user's items are split at random (seeded) into train and `holdout`; metric: recall@20 of held-out items
over all items not in the user's train set. The last line of output is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from viral.data import amazon  # noqa: E402
from viral.data.config import SyntheticConfig  # noqa: E402
from viral.data.synthetic import DESCRIPTION_FILES, generate  # noqa: E402


def bag_of_words(texts: list[str]) -> np.ndarray:
    """Row-normalised binary word presence (words of 3+ letters)."""
    tokens = [set(re.findall(r"[a-z]{3,}", text.lower())) for text in texts]
    vocabulary = {word: index for index, word in enumerate(sorted(set().union(*tokens)))}
    matrix = np.zeros((len(texts), len(vocabulary)), dtype=np.float32)
    for row, words in enumerate(tokens):
        matrix[row, [vocabulary[w] for w in words]] = 1.0
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-9)


def recall_at(scores: np.ndarray, train: np.ndarray, test: np.ndarray, k: int = 20) -> float:
    """Mean over users of |top-k ∩ test| / |test|, train items excluded from the ranking."""
    scores = np.where(train, -np.inf, scores)
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    hits = np.take_along_axis(test, top, axis=1).sum(axis=1)
    return float(np.mean(hits / test.sum(axis=1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=999)
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--holdout", type=float, default=0.2)
    args = parser.parse_args()
    config = SyntheticConfig(n_users=args.users, n_items=args.items)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out, config, args.seed)
        reviews = amazon.read_reviews(out / amazon.reviews_name(config.category))
        meta = amazon.read_meta(out / amazon.meta_name(config.category))
        descriptions = {}
        for prompt, name in DESCRIPTION_FILES.items():
            with open(out / name, newline="", encoding="utf-8") as stream:
                descriptions[prompt] = {row["asin"]: row["description"] for row in csv.DictReader(stream)}
        feature_asins, original = amazon.read_image_features(out / amazon.image_features_name(config.category))
    asins = meta["asin"].tolist()
    assert feature_asins == asins
    item_of = {asin: index for index, asin in enumerate(asins)}
    user_of = {rid: index for index, rid in enumerate(dict.fromkeys(reviews["reviewerID"]))}
    interactions = np.zeros((len(user_of), len(asins)), dtype=bool)
    interactions[[user_of[u] for u in reviews["reviewerID"]], [item_of[a] for a in reviews["asin"]]] = True

    rng = np.random.default_rng(args.seed)
    test = interactions & (rng.random(interactions.shape) < args.holdout)
    test[test.sum(axis=1) == interactions.sum(axis=1)] = False  # keep at least one training item
    keep = test.any(axis=1)
    train, test = (interactions & ~test)[keep], test[keep]

    text = bag_of_words([f"{r.title} {r.brand} {r.description} {r.categories}" for r in meta.itertuples()])
    views = {
        "text": text,
        "vlm_title": bag_of_words([descriptions["title"][a] for a in asins]),
        "vlm_plain": bag_of_words([descriptions["plain"][a] for a in asins]),
        "original": original / np.linalg.norm(original, axis=1, keepdims=True),
    }
    views["text+vlm_title"] = np.hstack([text, views["vlm_title"]]) / np.sqrt(2)
    views["text+vlm_plain"] = np.hstack([text, views["vlm_plain"]]) / np.sqrt(2)
    figures = {"random": round(recall_at(rng.random(train.shape), train, test), 4)}
    for name, vectors in views.items():
        profile = train.astype(np.float32) @ vectors
        figures[name] = round(recall_at(profile @ vectors.T, train, test), 4)
    for name, value in figures.items():
        print(f"recall@20 {name:>16}: {value:.4f}  ({value / figures['random']:.2f}x random)")
    figures = {f"recall@20_{name}": value for name, value in figures.items()}
    figures.update(users=int(keep.sum()), items=len(asins), seed=args.seed,
                   seconds=round(time.perf_counter() - start, 2))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
