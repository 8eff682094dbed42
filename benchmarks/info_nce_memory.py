"""Peak memory and time of MENTOR's InfoNCE between its two perturbed views, forward plus backward, in
the three forms `models.mentor` offers (`viral.models.losses.one_way_info_nce`):

- all nodes, one dense n x n product (`nce_chunk_rows: 0`, the form of MENTOR's code);
- all nodes in blocks of anchors recomputed in the backward pass (`nce_chunk_rows: 4096`, the default;
  same value and gradients, checked here);
- the batch's distinct users only (`nce_nodes: batch`; a different, cheaper loss).

    python benchmarks/info_nce_memory.py [--nodes 19445] [--dim 128] [--batch-nodes 1900] [--threads 1]

Defaults are Baby's users (the larger of MENTOR's two InfoNCE terms) and the 128-d fused tables; a
2048-pair batch holds ~1900 distinct users. Each form runs in its own child process: its extra peak
memory is the rise of the process's resident high-water mark (ru_maxrss) over the call, inputs already
allocated; time is CPU seconds of the process (robust on a shared machine) and wall seconds. Ends with
one JSON line, ratios against the dense form measured in the same run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from child_run import peak_rss_mb, run_child  # noqa: E402
from viral.models.losses import one_way_info_nce  # noqa: E402

FORMS = {"dense": 0, "blocks_4096": 4096, "blocks_1024": 1024, "batch_nodes": 0}


def measure(form: str, nodes: int, dim: int, batch_nodes: int, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    rows = batch_nodes if form == "batch_nodes" else nodes
    a = torch.randn(rows, dim, generator=generator, requires_grad=True)
    b = torch.randn(rows, dim, generator=generator, requires_grad=True)
    before = peak_rss_mb()
    cpu, wall = time.process_time(), time.perf_counter()
    value = one_way_info_nce(a, b, 0.2, FORMS[form])
    value.backward()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak = peak_rss_mb()
    return {"rows": rows, "value": value.item(), "grad_norm": float(a.grad.norm() + b.grad.norm()),
            "cpu_seconds": round(cpu, 2), "wall_seconds": round(wall, 2),
            "extra_peak_mb": round(peak - before, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=19445, help="rows of each view (Baby: 19,445 users)")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch-nodes", type=int, default=1900, help="distinct users of one 2048-pair batch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(measure(args.child, args.nodes, args.dim, args.batch_nodes, args.seed)))
        return
    results = {}
    for form in FORMS:
        command = [sys.executable, __file__, "--child", form, "--nodes", str(args.nodes), "--dim", str(args.dim),
                   "--batch-nodes", str(args.batch_nodes), "--threads", str(args.threads), "--seed", str(args.seed)]
        results[form] = run_child(command)
        print(f"{form}: {results[form]}", flush=True)
    dense = results["dense"]
    for form, row in results.items():
        if form != "dense" and "error" not in row and "error" not in dense:
            row["memory_vs_dense"] = round(row["extra_peak_mb"] / max(dense["extra_peak_mb"], 1e-9), 3)
            row["cpu_vs_dense"] = round(row["cpu_seconds"] / max(dense["cpu_seconds"], 1e-9), 3)
            if row["rows"] == dense["rows"]:
                row["same_value_as_dense"] = abs(row["value"] - dense["value"]) <= 1e-5 * abs(dense["value"])
    print(json.dumps({"nodes": args.nodes, "dim": args.dim, "threads": args.threads, "forms": results}))


if __name__ == "__main__":
    main()
