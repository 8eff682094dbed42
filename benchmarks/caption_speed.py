"""Batched captioning (our transformers backend) vs one image per generate call (the authors' loop).

    python benchmarks/caption_speed.py [--n 64] [--batch-size 8] [--max-new-tokens 24] [--rounds 2] [--threads 1]

Both sides use the same tiny randomly initialised Qwen2.5-VL (viral.caption.tiny, built on the spot),
the same images, prompts and greedy sampling, and the same backend class; only `batch_size` differs
(1 is exactly the authors' one-image-per-`generate` approach). Rounds alternate single/batched and the
best round of each counts (the machine is shared, timings are noisy). Captions of both sides are
compared item by item (left padding must not change greedy output). torch runs on `--threads`
threads (default 1: on a shared 2-core machine more threads contend and slow a tiny model down).
Peak memory is the process's ru_maxrss (resource.getrusage). The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from viral.caption.backend import CaptionRequest, Sampling  # noqa: E402
from viral.caption.prompts import load_templates, render  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Product photos differ in shape; after the processor's resize these give 4-16 visual tokens each.
SIZES = [(56, 56), (84, 84), (112, 84), (84, 112), (112, 112), (140, 84)]


def synthetic_requests(n: int) -> list[CaptionRequest]:
    from PIL import Image

    template = load_templates(ROOT / "viral/caption/prompts.yaml")["title"]
    requests = []
    for i in range(n):
        image = Image.new("RGB", SIZES[i % len(SIZES)], ((37 * i) % 256, (91 * i) % 256, (53 * i) % 256))
        requests.append(CaptionRequest(f"img{i}", render(template, f"Baby product number {i}"), image))
    return requests


def timed(captioner, requests) -> tuple[float, list]:
    start = time.perf_counter()
    results = captioner.generate(requests)
    return time.perf_counter() - start, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=64, help="images to caption per round")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from viral.caption.hf_backend import TransformersCaptioner
    from viral.caption.tiny import build_tiny_qwen

    torch.set_num_threads(args.threads)
    sampling = Sampling(args.max_new_tokens, temperature=0.0, repetition_penalty=1.05, seed=0)
    requests = synthetic_requests(args.n)
    with tempfile.TemporaryDirectory() as folder:
        model = str(build_tiny_qwen(folder))
        single = TransformersCaptioner(model, sampling, batch_size=1, device="cpu")
        batched = TransformersCaptioner(model, sampling, batch_size=args.batch_size, device="cpu")
    for captioner in (single, batched):  # warm-up: first-call allocations and lazy inits
        captioner.generate(requests[: args.batch_size])

    best = {"single": float("inf"), "batched": float("inf")}
    outputs = {}
    for round_ in range(args.rounds):
        for name, captioner in (("single", single), ("batched", batched)):
            seconds, outputs[name] = timed(captioner, requests)
            best[name] = min(best[name], seconds)
            print(f"round {round_}: {name:8s} {seconds:7.2f} s  {args.n / seconds:7.1f} items/s", flush=True)

    tokens = sum(g.generated_tokens for g in outputs["batched"])
    same = sum(a.text == b.text for a, b in zip(outputs["single"], outputs["batched"]))
    figures = {
        "benchmark": "caption_speed",
        "model": "tiny random Qwen2.5-VL (viral.caption.tiny)",
        "items": args.n,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "threads": args.threads,
        "single_seconds": round(best["single"], 3),
        "batched_seconds": round(best["batched"], 3),
        "single_items_per_s": round(args.n / best["single"], 2),
        "batched_items_per_s": round(args.n / best["batched"], 2),
        "batched_generated_tokens_per_s": round(tokens / best["batched"], 1),
        "speedup_items_per_s": round(best["single"] / best["batched"], 2),
        "identical_captions": f"{same}/{args.n}",
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_memory_method": "resource.getrusage ru_maxrss (whole process)",
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
