"""Clothing-sized graph building: item–item kNN and user–user top-k, time and peak memory.

    python benchmarks/graphs_scale.py [--items 23033] [--users 39387] [--train 197338] [--dim 384]
                                      [--visual-dim 4096] [--k 10] [--chunk-rows 4096] [--seed 0] [--skip-baselines]
                                      [--mmrec ../shared/data/baby]

Inputs are synthetic but shaped like the real thing: two 384-d modalities of clustered unit vectors
(sentence embeddings are clustered, not uniform), and train interactions with a power-law user activity
and item popularity. Every phase runs in its own child process; its peak memory is that child's
`resource.getrusage(RUSAGE_SELF).ru_maxrss` (whole process, Python and torch included), and `rss_inputs_mb`
is the RSS once its inputs exist, so peak - inputs is what the graph building added.

Baselines measured in the same run:
- item–item `naive`: the plain chunked way, a (chunk_rows, n_items) block per chunk by numpy matmul and
  numpy argpartition (no symmetry, ties left to argpartition).
- user–user `mmrec_loop`: MMRec's offline script does a Python loop over all user pairs with set
  intersections; it is timed on the first `--loop-users` users against everyone and extrapolated
  linearly to all users (it is O(N_u^2), hours at full size).
The last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
args = json.loads(sys.argv[3])
phase = sys.argv[2]

def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def features(n, dims, seed):
    # clustered vectors: 300 topics, each item = its topic centre + noise
    rng = np.random.default_rng(seed)
    out = {}
    for name, d in dims.items():
        centres = rng.standard_normal((300, d), dtype=np.float32)
        topic = rng.integers(0, 300, n)
        x = rng.standard_normal((n, d), dtype=np.float32)  # built in place: the inputs' RSS stays small
        x *= 0.8
        for start in range(0, n, 4096):
            x[start:start + 4096] += centres[topic[start:start + 4096]]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[name] = x
    return out

def interactions(n_users, n_items, n_train, seed):
    rng = np.random.default_rng(seed)
    activity = np.minimum(rng.pareto(1.8, n_users) + 1.0, 200.0)  # power-law users
    popularity = 1.0 / (np.arange(n_items) + 15.0) ** 0.9          # power-law items
    popularity /= popularity.sum()
    per_user = np.maximum(1, np.round(activity * 1.3 * n_train / activity.sum())).astype(np.int64)
    users = np.repeat(np.arange(n_users), per_user)
    items = rng.permutation(n_items)[rng.choice(n_items, len(users), p=popularity)]
    pairs = np.unique(np.stack([users, items], axis=1), axis=0)
    return pairs[np.sort(rng.choice(len(pairs), min(n_train, len(pairs)), replace=False))]

def run(fn):
    cpu, start = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start, time.process_time() - cpu

out = {}
if phase in ("ii", "ii_naive"):
    feats = features(args["items"], {"text": args["dim"], "visual": args["visual_dim"] or args["dim"]}, args["seed"])
    out["rss_inputs_mb"] = rss_mb()
    if phase == "ii":
        import torch  # imported before timing: the stage pays it once, not per graph
        from viral.graphs.item_item import item_item_graph
        graph, out["seconds"], out["cpu_seconds"] = run(
            lambda: item_item_graph(feats, args["k"], chunk_rows=args["chunk_rows"]))
        out["nnz"] = int(graph.nnz)
    else:
        def naive():
            n, k, c = args["items"], args["k"], args["chunk_rows"]
            cols = []
            for start in range(0, n, c):
                block = sum(f[start:start + c] @ f.T for f in feats.values()) / len(feats)
                cols.append(np.argpartition(-block, k - 1, axis=1)[:, :k])
            return np.concatenate(cols)
        cols, out["seconds"], out["cpu_seconds"] = run(naive)
        out["nnz"] = int(cols.size)
elif phase in ("uu", "ui", "uu_loop"):
    if args["mmrec"]:
        # real train interactions of an MMRec folder instead of generated ones
        from viral.data.mmrec import read_folder
        inter = read_folder(args["mmrec"]).inter
        args["users"], args["items"] = int(inter["userID"].max()) + 1, int(inter["itemID"].max()) + 1
        pairs = inter.loc[inter["split"] == 0, ["userID", "itemID"]].to_numpy()
    else:
        pairs = interactions(args["users"], args["items"], args["train"], args["seed"])
    out["users"] = args["users"]
    out["train_pairs"] = int(len(pairs))
    out["rss_inputs_mb"] = rss_mb()
    if phase == "uu":
        from viral.graphs.user_user import user_user_graph
        graph, out["seconds"], out["cpu_seconds"] = run(
            lambda: user_user_graph(pairs, args["users"], args["items"], args["k"], chunk_rows=args["chunk_rows"]))
        out["nnz"] = int(graph.nnz)
        degree = np.bincount(pairs[:, 1], minlength=args["items"])
        out["item_degree_max"] = int(degree.max())
        out["user_degree_max"] = int(np.bincount(pairs[:, 0]).max())
        out["users_without_neighbours"] = int((np.diff(graph.indptr) == 0).sum())
    elif phase == "ui":
        from viral.graphs.user_item import normalized_adjacency
        graph, out["seconds"], out["cpu_seconds"] = run(
            lambda: normalized_adjacency(pairs, args["users"], args["items"]))
        out["nnz"] = int(graph.nnz)
    else:
        def loop():
            # MMRec's dualgnn-gen-u-u-matrix.py approach: per user, intersect item sets with every user
            sets = [set() for _ in range(args["users"])]
            for u, i in pairs.tolist():
                sets[u].add(i)
            for u in range(args["loop_users"]):
                row = np.zeros(args["users"])
                for v in range(args["users"]):
                    if v != u:
                        row[v] = len(sets[u] & sets[v])
        _, out["seconds"], out["cpu_seconds"] = run(loop)
out["peak_rss_mb"] = rss_mb()
print(json.dumps(out))
"""


def phase(name: str, args: dict) -> dict:
    result = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), name, json.dumps(args)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"phase {name} failed:\n{result.stderr}")
    out = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"{name:9s} {out['seconds']:7.2f} s wall, {out['cpu_seconds']:7.2f} s cpu, peak RSS "
          f"{out['peak_rss_mb']:7.0f} MB (inputs {out['rss_inputs_mb']:.0f} MB)", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=23033)
    parser.add_argument("--users", type=int, default=39387)
    parser.add_argument("--train", type=int, default=197338)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--visual-dim", type=int, default=0,
                        help="visual feature width (default: --dim; 4096 = the CNN features of `visual: original`)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--chunk-rows", type=int, default=4096)
    parser.add_argument("--loop-users", type=int, default=100, help="users timed for the MMRec-loop baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--mmrec", default="", help="MMRec data folder (e.g. ../shared/data/baby): user-user and "
                        "user-item phases use its real train split instead of generated interactions")
    args = vars(parser.parse_args())
    source = args["mmrec"] or f"generated: users {args['users']}, train {args['train']}"
    print(f"items {args['items']} x text {args['dim']}-d + visual {args['visual_dim'] or args['dim']}-d, interactions {source}, k {args['k']}, "
          f"chunk_rows {args['chunk_rows']}")
    ii, uu, ui = phase("ii", args), phase("uu", args), phase("ui", args)
    print(f"uu input: {uu['users']} users, {uu['train_pairs']} train pairs, max item degree {uu['item_degree_max']}, max user degree "
          f"{uu['user_degree_max']}, {uu['users_without_neighbours']} users without co-users")
    figures = {
        "items": args["items"], "users": uu["users"], "train_pairs": uu["train_pairs"], "dim": args["dim"],
        "visual_dim": args["visual_dim"] or args["dim"],
        "interactions": args["mmrec"] or "generated power-law",
        "k": args["k"], "chunk_rows": args["chunk_rows"],
        "ii_seconds": round(ii["seconds"], 2), "ii_cpu_seconds": round(ii["cpu_seconds"], 2),
        "ii_peak_rss_mb": round(ii["peak_rss_mb"]), "ii_inputs_rss_mb": round(ii["rss_inputs_mb"]),
        "ii_items_per_s": round(args["items"] / ii["seconds"]),
        "uu_seconds": round(uu["seconds"], 2), "uu_cpu_seconds": round(uu["cpu_seconds"], 2),
        "uu_peak_rss_mb": round(uu["peak_rss_mb"]), "uu_inputs_rss_mb": round(uu["rss_inputs_mb"]),
        "uu_users_per_s": round(uu["users"] / uu["seconds"]),
        "ui_seconds": round(ui["seconds"], 3), "ui_peak_rss_mb": round(ui["peak_rss_mb"]),
        "memory": "ru_maxrss of one child process per phase (whole process)",
    }
    if not args["skip_baselines"]:
        naive, loop = phase("ii_naive", args), phase("uu_loop", args)
        loop_all = loop["seconds"] * uu["users"] / args["loop_users"]
        print(f"MMRec-style user loop: {loop['seconds']:.1f} s for {args['loop_users']} users "
              f"-> {loop_all:.0f} s extrapolated to {uu['users']}")
        figures.update({
            "ii_naive_seconds": round(naive["seconds"], 2), "ii_naive_peak_rss_mb": round(naive["peak_rss_mb"]),
            "ii_speedup_vs_naive": round(naive["seconds"] / ii["seconds"], 2),
            "uu_mmrec_loop_users_timed": args["loop_users"],
            "uu_mmrec_loop_extrapolated_seconds": round(loop_all),
            "uu_speedup_vs_mmrec_loop": round(loop_all / uu["seconds"]),
        })
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
