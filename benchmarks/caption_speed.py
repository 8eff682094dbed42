"""Batched captioning vs one image per generate call (the authors' loop), and the Ray path vs in-process.

    python benchmarks/caption_speed.py [--n 64] [--batch-size 8] [--max-new-tokens 24] [--rounds 2] [--threads 1]
                                       [--stage-items 512] [--no-ray]

1. Backend: the same tiny randomly initialised Qwen2.5-VL (viral.caption.tiny, built on the spot), the
   same images, prompts and greedy sampling, and the same backend class; only `batch_size` differs (1
   is exactly the authors' one-image-per-`generate` approach). Captions of both sides are compared
   item by item (left padding must not change greedy output).
2. Stage: the whole caption stage (`run_caption`, both prompts, fresh cache each round) on
   `--stage-items` synthetic item images, in-process (`backend: transformers`) and on a local Ray with
   2 CPUs (`backend: ray`, engine transformers, one replica), in the same run. Ray is started before
   the clock (a cluster is started once, not per run); each Ray run still starts its replica (a new
   worker process importing torch and loading the model): it is measured as a Ray run on one item, and
   the figures are given end to end and in steady state (minus that start: what a catalogue-sized run
   sees for hours). Tables of both are compared.
Rounds alternate the sides and the best round of each counts (the machine is shared, timings are
noisy). torch runs on `--threads` threads (default 1: on a shared 2-core machine more threads contend
and slow a tiny model down; a Ray replica gets one CPU, hence one thread). Peak memory is this
process's ru_maxrss (resource.getrusage; Ray workers not included). The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
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
from viral.config import build  # noqa: E402

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


def write_stage_inputs(root: Path, n: int) -> None:
    """`data/prepared/synthetic/items.parquet` and image shards in the images stage's format, for n items."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from viral.data.image_store import IMAGE_SCHEMA, shard_name

    prepared, images = root / "data/prepared/synthetic", root / "data/images/synthetic"
    prepared.mkdir(parents=True)
    images.mkdir(parents=True)
    items = pa.table({"itemID": pa.array(range(n), pa.int64()), "asin": [f"A{i:05d}" for i in range(n)],
                      "title": [f"Baby product number {i}" for i in range(n)]})  # fmt: skip
    pq.write_table(items, prepared / "items.parquet")
    rows = []
    for i in range(n):
        size = SIZES[i % len(SIZES)]
        buffer = io.BytesIO()
        Image.new("RGB", size, ((37 * i) % 256, (91 * i) % 256, (53 * i) % 256)).save(buffer, format="JPEG")
        data = buffer.getvalue()
        rows.append(dict(itemID=i, asin=f"A{i:05d}", image=data, sha256=hashlib.sha256(data).hexdigest(),
                         width=size[0], height=size[1]))  # fmt: skip
    for index, start in enumerate(range(0, n, 32)):
        pq.write_table(pa.Table.from_pylist(rows[start : start + 32], schema=IMAGE_SCHEMA), images / shard_name(index))


def stage_params(model: str, backend: str, cache: str, args):
    from viral.caption.config import CaptionConfig
    from viral.params import Params

    section = dict(backend=backend, model=model, device="cpu", max_new_tokens=args.max_new_tokens,
                   batch_size=args.batch_size, shard_items=4 * args.batch_size, max_pixels=16 * 28 * 28,
                   cache_dir=cache, prompt_file=str(ROOT / "viral/caption/prompts.yaml"),
                   ray=dict(engine="transformers", replicas=1, batch_size=4 * args.batch_size))  # fmt: skip
    return dataclasses.replace(Params(dataset="synthetic"), caption=build(CaptionConfig, section, "caption"))


def timed_stage(root: Path, model: str, backend: str, cache: str, args) -> tuple[float, dict]:
    from viral.caption.run import run_caption

    os.chdir(root)
    try:
        start = time.perf_counter()
        reports = run_caption(stage_params(model, backend, cache, args))
        return time.perf_counter() - start, reports
    finally:
        os.chdir(ROOT)


def compare_stage(model: str, args) -> dict:
    """Best-of-rounds wall time of the whole stage, in-process vs on a local 2-CPU Ray.

    A Ray run pays a fixed start (a fresh replica process importing torch and loading the model, the
    pipeline's first tasks); it is measured each round as the wall time of a Ray run on a single item,
    and `steady` figures subtract it: what a catalogue-sized run, hours long, sees."""
    import pyarrow.parquet as pq
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    best = {"transformers": float("inf"), "ray": float("inf"), "ray_start": float("inf"), "ray_steady": float("inf")}
    with tempfile.TemporaryDirectory() as folder:
        root, one = Path(folder) / "catalogue", Path(folder) / "one-item"
        write_stage_inputs(root, args.stage_items)
        write_stage_inputs(one, 1)
        tables, seconds = {}, {}
        for round_ in range(args.rounds):
            for backend in ("transformers", "ray"):
                seconds[backend], reports = timed_stage(root, model, backend, f"cache-{backend}-{round_}", args)
                best[backend] = min(best[backend], seconds[backend])
                tables[backend] = [pq.read_table(root / f"data/captions/synthetic/{p}.parquet") for p in ("title", "plain")]
                print(f"stage round {round_}: {backend:12s} {seconds[backend]:7.2f} s  "
                      f"{reports['title']['run_generations'] / seconds[backend]:7.1f} generations/s", flush=True)  # fmt: skip
            start, _ = timed_stage(one, model, "ray", f"cache-{round_}", args)
            best["ray_start"] = min(best["ray_start"], start)
            best["ray_steady"] = min(best["ray_steady"], seconds["ray"] - start)
            print(f"stage round {round_}: ray start   {start:7.2f} s (one item)", flush=True)
    ray.shutdown()
    generations = 2 * args.stage_items  # both prompts
    return dict(
        stage_generations=generations,
        stage_transformers_seconds=round(best["transformers"], 3),
        stage_ray_seconds=round(best["ray"], 3),
        stage_ray_start_seconds=round(best["ray_start"], 3),
        stage_transformers_items_per_s=round(generations / best["transformers"], 2),
        stage_ray_items_per_s=round(generations / best["ray"], 2),
        stage_ray_steady_items_per_s=round(generations / best["ray_steady"], 2),
        ray_overhead=round(best["ray"] / best["transformers"] - 1, 3),
        ray_steady_overhead=round(best["ray_steady"] / best["transformers"] - 1, 3),
        stage_identical_tables=all(a.equals(b) for a, b in zip(tables["transformers"], tables["ray"])),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=64, help="images to caption per round")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--stage-items", type=int, default=512, help="items of the stage comparison (2 prompts each)")
    parser.add_argument("--no-ray", action="store_true", help="skip the stage comparison with Ray")
    args = parser.parse_args()

    import torch

    from viral.caption.hf_backend import TransformersCaptioner
    from viral.caption.tiny import build_tiny_qwen

    torch.set_num_threads(args.threads)
    sampling = Sampling(args.max_new_tokens, temperature=0.0, repetition_penalty=1.05, seed=0)
    requests = synthetic_requests(args.n)
    model_folder = tempfile.TemporaryDirectory()
    model = str(build_tiny_qwen(model_folder.name))
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
        **({} if args.no_ray else compare_stage(model, args)),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_memory_method": "resource.getrusage ru_maxrss (whole process)",
    }
    model_folder.cleanup()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
