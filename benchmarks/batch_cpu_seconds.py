"""CPU seconds per training batch of registered models, optionally with Config overrides, on one graph:
a timing that survives a loaded shared machine better than wall clock (baseline_speed.py's figure).

    python benchmarks/batch_cpu_seconds.py ../shared/data/baby dragon cohesion mentor mentor:nce_nodes=batch
                                           [--batches 3] [--threads 1]

Each spec is `model` or `model:key=value[,key=value]` (values parsed as YAML scalars). Same inputs as
baseline_speed.py (the folder's split, random 4096-d visual / 384-d text features, seed 999). Each spec
runs in its own child process: after one untimed warm-up batch, `--batches` batches of the model's batch
size (random pairs, uniform negatives) are timed in process CPU seconds (loss, backward, Adam step),
then one `embeddings()` call in eval mode. An epoch estimate multiplies by the batches per epoch. Ends
with one JSON line, ratios against the first spec measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from baseline_speed import load  # noqa: E402
from child_run import run_child  # noqa: E402
from viral.config import build  # noqa: E402
from viral.models import model_class  # noqa: E402
from viral.train.loop import build_model  # noqa: E402


def parse_spec(spec: str):
    """'mentor:nce_nodes=batch' -> (model class, its Config with the overrides, checked like params.yaml)."""
    name, _, overrides = spec.partition(":")
    cls = model_class(name)
    values = dict(item.split("=", 1) for item in overrides.split(",")) if overrides else {}
    return cls, build(cls.Config, {k: yaml.safe_load(v) for k, v in values.items()}, f"models.{name}")


def measure(spec: str, folder: Path, batches: int, seed: int) -> dict:
    cls, config = parse_spec(spec)
    data = load(folder, cls.inputs_needed(config), seed)
    model = build_model(cls, data, config, seed)
    rng = np.random.default_rng(seed)
    model.pre_epoch(0, rng)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.lr, fused=True)
    pairs = torch.from_numpy(data.inputs.train_pairs)
    size = config.train.batch_size
    seconds = []
    for _ in range(batches + 1):
        batch = pairs[torch.from_numpy(rng.choice(len(pairs), size, replace=False))]
        negatives = torch.from_numpy(rng.integers(0, data.inputs.n_items, size)) if config.train.negatives else None
        start = time.process_time()
        loss = model.loss(batch[:, 0], batch[:, 1], negatives)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seconds.append(time.process_time() - start)
    model.eval()
    with torch.no_grad():
        start = time.process_time()
        model.embeddings()
        embedding_seconds = time.process_time() - start
    per_batch = float(np.mean(seconds[1:]))
    batches_per_epoch = -(-len(pairs) // size)
    return {"cpu_seconds_per_batch": round(per_batch, 3), "batches_per_epoch": batches_per_epoch,
            "cpu_seconds_per_epoch": round(per_batch * batches_per_epoch, 1),
            "cpu_seconds_embeddings": round(embedding_seconds, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="an MMRec folder (its .inter split), e.g. ../shared/data/baby")
    parser.add_argument("specs", nargs="+", help="model or model:key=value[,key=value]")
    parser.add_argument("--batches", type=int, default=3, help="timed batches per spec, after one warm-up")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=999)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(measure(args.child, args.folder, args.batches, args.seed)))
        return
    for spec in args.specs:  # a bad spec fails here with one line, before any child runs
        try:
            parse_spec(spec)
        except ValueError as err:  # ConfigError included
            parser.error(f"{spec}: {err}")
    results = {}
    for spec in args.specs:
        command = [sys.executable, __file__, str(args.folder), spec, "--child", spec, "--batches",
                   str(args.batches), "--threads", str(args.threads), "--seed", str(args.seed)]
        results[spec] = run_child(command)
        print(f"{spec}: {results[spec]}", flush=True)
    first = results[args.specs[0]]
    for row in results.values():
        if "error" not in row and "error" not in first:
            row["vs_first"] = round(row["cpu_seconds_per_batch"] / first["cpu_seconds_per_batch"], 2)
    print(json.dumps({"graph": args.folder.name, "threads": args.threads, "batches": args.batches,
                      "baseline": args.specs[0], "specs": results}))


if __name__ == "__main__":
    main()
