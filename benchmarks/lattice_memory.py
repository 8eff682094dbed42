"""LATTICE's peak memory and speed on a Clothing-sized catalogue, and LATTICE / SLMRec on the real Baby split.

    python benchmarks/lattice_memory.py [--baby ../shared/data/baby] [--epochs 1] [--threads 2]
                                        [--skip-clothing] [--skip-baselines] [--dense-clothing]

Data (features are random, so the scores mean nothing; this measures cost only):
- clothing: a generated catalogue of Clothing's size (39,387 users, 23,033 items): users with 5 + a
  power-law number of interactions, power-law item popularity, MMRec's per-user split (about 197k train
  pairs, like Clothing's 197,338), random 4096-d visual and 384-d text features.
- baby: MMRec's real Baby split (`--baby`, skipped when absent), random 4096-d visual / 384-d text features.
The parent builds each dataset's graphs (ui, ii_lattice_visual, ii_lattice_text: the graphs stage's work,
not counted) and saves them; every model then runs in its own child process: load, build, `fit` for
`--epochs` epochs and one full evaluation (valid + test) with the engine, CPU. Peak memory = the child's
high-water resident set size (VmHWM: whole process, Python, torch, features, graphs, model, optimiser,
evaluation); `rss_loaded_mb` is that high-water mark once data and model exist, before training;
`cpu_seconds_fit` is the child's CPU time for the epochs and the evaluation together (steadier than wall
time on a shared machine).

Baseline measured in the same run (on Baby; on Clothing only with --dense-clothing, which needs an
estimated 20+ GB): `lattice_dense`, the same model with the learned graph built the way LATTICE's and MMRec's code do,
as dense items x items matrices (similarity, top-k scattered into a dense adjacency, dense diag-matrix
normalisation, dense original graphs, dense A @ h). Ends with one JSON line.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from child_run import peak_rss_mb  # noqa: E402

GRAPHS = ("ui", "ii_lattice_visual", "ii_lattice_text")
DIMS = {"visual": 4096, "text": 384}
# Clothing: 39,387 users, 23,033 items, 278,677 interactions, 197,338 train. Drawn interactions that repeat a
# user's item are dropped, so 283,300 are asked for to land near Clothing's train size.
CLOTHING = {"users": 39387, "items": 23033, "interactions": 283300}


def mmrec_split(users: np.ndarray) -> np.ndarray:
    """MMRec's per-user split of (user-sorted, shuffled within user) rows: n < 10: n-2/1/1; else
    vt = int(0.2 n), valid = vt // 2, test = vt - valid. Returns 0/1/2 per row."""
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    counts = np.diff(np.r_[starts, len(users)])
    position = np.arange(len(users)) - np.repeat(starts, counts)
    n = np.repeat(counts, counts)
    held = np.where(n < 10, 2, (0.2 * n).astype(np.int64))
    valid = np.where(n < 10, 1, held // 2)
    from_end = n - position  # 1 for the user's last row
    split = np.zeros(len(users), dtype=np.int8)
    split[from_end <= held] = 2
    split[(from_end <= held) & (from_end > held - valid)] = 1
    return split


def clothing_like(seed: int) -> tuple[pd.DataFrame, int, int]:
    """Clothing-sized interactions: >= 5 per user plus a power-law tail, power-law item popularity."""
    rng = np.random.default_rng(seed)
    n_users, n_items = CLOTHING["users"], CLOTHING["items"]
    tail = np.minimum(rng.pareto(1.5, n_users), 100.0)
    tail *= (CLOTHING["interactions"] / n_users - 5) / tail.mean()
    per_user = 5 + np.round(tail).astype(np.int64)
    popularity = 1.0 / (np.arange(n_items) + 15.0) ** 0.8
    popularity /= popularity.sum()
    items_by_rank = rng.permutation(n_items)
    users = np.repeat(np.arange(n_users), per_user * 2)  # oversample, then keep distinct items per user
    items = items_by_rank[rng.choice(n_items, len(users), p=popularity)]
    frame = pd.DataFrame({"userID": users, "itemID": items}).drop_duplicates()
    frame = frame[frame.groupby("userID").cumcount() < per_user[frame.userID.to_numpy()]]
    frame = frame.sample(frac=1.0, random_state=seed).sort_values("userID", kind="stable")
    frame["split"] = mmrec_split(frame.userID.to_numpy())
    return frame.reset_index(drop=True), n_users, n_items


def baby_frame(folder: Path) -> tuple[pd.DataFrame, int, int]:
    from viral.data.mmrec import read_inter

    frame = read_inter(sorted(folder.glob("*.inter"))[0])[["userID", "itemID", "split"]]
    return frame, int(frame.userID.max()) + 1, int(frame.itemID.max()) + 1


def prepare(frame: pd.DataFrame, n_users: int, n_items: int, seed: int, out: Path) -> dict:
    """Random features and the graphs LATTICE reads, saved to `out` for the children."""
    from viral.train.data import add_graphs, from_interactions

    data = from_interactions(frame, n_users, n_items)
    rng = np.random.default_rng(seed)
    for name, dim in DIMS.items():
        data.inputs.features[name] = rng.standard_normal((n_items, dim), dtype=np.float32)
    start = time.perf_counter()
    add_graphs(data, GRAPHS)
    seconds = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out / "interactions.parquet")
    for name, matrix in data.inputs.features.items():
        np.save(out / f"{name}.npy", matrix)
    for name, graph in data.inputs.graphs.items():
        sp.save_npz(out / f"{name}.npz", graph)
    (out / "sizes.json").write_text(json.dumps({"n_users": n_users, "n_items": n_items}))
    figures = {"users": n_users, "items": n_items, "train_pairs": int((frame.split == 0).sum()),
               "valid_pairs": int((frame.split == 1).sum()), "test_pairs": int((frame.split == 2).sum()),
               "graphs_seconds": round(seconds, 1)}
    print(f"{out.name}: {figures}", flush=True)
    return figures


def dense_lattice_class():
    """The baseline: LATTICE with its item graph built densely, the way the authors' and MMRec's code do."""
    import torch
    import torch.nn.functional as F

    from viral.models.lattice import LATTICE, MODALITIES

    class DenseLATTICE(LATTICE):
        def __init__(self, inputs, config):
            super().__init__(inputs, config)
            for m in MODALITIES:  # the code keeps the original graphs as dense matrices
                self.register_buffer(f"dense_original_{m}", torch.from_numpy(inputs.graphs[f"ii_lattice_{m}"].toarray()),
                                     persistent=False)

        def item_graph(self):
            config = self.config
            weights = self.modal_weight.softmax(0)
            learned, original = 0, 0
            for m, weight in zip(MODALITIES, weights):
                projected = F.normalize(self.projections[m](self.features(m)), dim=1)
                similarity = projected @ projected.T
                values, columns = similarity.topk(config.knn_k, dim=-1)
                learned = learned + weight * torch.zeros_like(similarity).scatter_(-1, columns, values)
                original = original + weight * getattr(self, f"dense_original_{m}")
            inv_sqrt = learned.sum(-1).pow(-0.5)
            inv_sqrt = torch.where(torch.isinf(inv_sqrt), torch.zeros_like(inv_sqrt), inv_sqrt)
            normalised = torch.diagflat(inv_sqrt) @ learned @ torch.diagflat(inv_sqrt)
            return (1 - config.lambda_coeff) * normalised + config.lambda_coeff * original

        def propagate_items(self, graph, x):
            return graph @ x

        def constant_item_graph(self, graph):
            return graph.detach(), graph.detach().T  # the code reuses the dense matrix, detached

    return DenseLATTICE


def child(folder: Path, run: str, epochs: int, threads: int) -> dict:
    import torch

    from viral.models import model_class
    from viral.train.config import TrainConfig
    from viral.train.cpu import keep_freed_memory_for_reuse
    from viral.train.data import from_interactions
    from viral.train.loop import build_model, fit

    torch.set_num_threads(threads)
    keep_freed_memory_for_reuse()
    sizes = json.loads((folder / "sizes.json").read_text())
    data = from_interactions(pd.read_parquet(folder / "interactions.parquet"), sizes["n_users"], sizes["n_items"])
    name = "slmrec" if run == "slmrec" else "lattice"
    cls = model_class(name)
    for feature in DIMS:
        data.inputs.features[feature] = np.load(folder / f"{feature}.npy")
    if name == "lattice":
        for graph in GRAPHS:
            data.inputs.graphs[graph] = sp.load_npz(folder / f"{graph}.npz").tocsr()
    else:
        data.inputs.graphs["ui"] = sp.load_npz(folder / "ui.npz").tocsr()
    config = cls.Config()
    if run == "lattice_per_batch":
        config = type(config)(**{**config.__dict__, "graph_update": "batch"})
    if run == "lattice_dense":
        cls = dense_lattice_class()
    model = build_model(cls, data, config, seed=999)
    loaded = peak_rss_mb()
    cpu = time.process_time()
    result = fit(model, data, TrainConfig(epochs=epochs, device="cpu", checkpoint=False, eval_every=epochs), seed=999,
                 progress=False)
    return {"seconds_per_epoch": round(result.seconds_per_epoch, 2), "seconds_per_eval": round(result.seconds_per_eval, 2),
            "cpu_seconds_fit": round(time.process_time() - cpu, 1), "peak_rss_mb": round(peak_rss_mb()),
            "rss_loaded_mb": round(loaded), "parameters": result.n_parameters,
            "batch_size": result.point.batch_size, "epochs": result.epochs}


def measure(folder: Path, run: str, epochs: int, threads: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", str(folder), run, "--epochs", str(epochs),
                           "--threads", str(threads)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        print(f"{folder.name} {run}: failed ({tail[0]})", flush=True)
        return {"failed": tail[0], "exit_code": proc.returncode}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{folder.name} {run}: {out}", flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baby", type=Path, default=ROOT.parent / "shared" / "data" / "baby")
    parser.add_argument("--epochs", type=int, default=1, help="training epochs per run (then one evaluation)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads in each child")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-clothing", action="store_true")
    parser.add_argument("--skip-baselines", action="store_true", help="no dense LATTICE baseline")
    parser.add_argument("--dense-clothing", action="store_true", help="also run the dense baseline on Clothing")
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "RUN"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1], args.epochs, args.threads)))
        return
    summary: dict = {"benchmark": "lattice_memory", "threads": args.threads, "epochs": args.epochs,
                     "device": "cpu", "memory": "VmHWM (peak RSS) of one child process per run (whole process)",
                     "features": "random, visual 4096-d, text 384-d"}
    with tempfile.TemporaryDirectory(prefix="lattice_memory_") as tmp:
        if not args.skip_clothing:
            folder = Path(tmp) / "clothing"
            figures = prepare(*clothing_like(args.seed), args.seed, folder)
            figures["lattice"] = measure(folder, "lattice", args.epochs, args.threads)
            if args.dense_clothing:
                figures["lattice_dense"] = measure(folder, "lattice_dense", args.epochs, args.threads)
            summary["clothing_sized"] = figures
        if (args.baby / "baby.inter").is_file():
            folder = Path(tmp) / "baby"
            figures = prepare(*baby_frame(args.baby), args.seed, folder)
            runs = ["lattice", "lattice_per_batch", "slmrec"] + ([] if args.skip_baselines else ["lattice_dense"])
            figures.update({run: measure(folder, run, args.epochs, args.threads) for run in runs})
            dense, ours = figures.get("lattice_dense", {}), figures["lattice"]
            if "peak_rss_mb" in dense and "peak_rss_mb" in ours:
                figures["dense_over_ours_peak_rss"] = round(dense["peak_rss_mb"] / ours["peak_rss_mb"], 2)
                figures["dense_over_ours_epoch_seconds"] = round(dense["seconds_per_epoch"] / ours["seconds_per_epoch"], 2)
            summary["baby"] = figures
        else:
            summary["baby"] = f"skipped: no {args.baby / 'baby.inter'}"
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
