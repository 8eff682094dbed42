"""Fake experiment records for the report tests: Runs built by hand from params.yaml, without DVC."""
import copy
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from viral.report.collect import REPORTED, Run, flatten

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "params.yaml").read_text())
N_USERS = 40


def fake_params(**knobs) -> dict:
    """params.yaml with top-level knobs replaced and dotted keys (e.g. "train.epochs") set."""
    raw = copy.deepcopy(BASE)
    for key, value in knobs.items():
        *path, last = key.split(".")
        node = raw
        for part in path:
            node = node[part]
        node[last] = value
    return raw


def user_values(seed: int, level: float) -> dict[str, np.ndarray]:
    """Per-user metrics around `level`: a quarter of the users at 0 (no hit), the rest spread."""
    rng = np.random.default_rng(seed)
    values = {}
    for k, name in enumerate(REPORTED):
        column = np.clip(level * (1 + 0.1 * k) + rng.normal(0, 0.05, N_USERS), 0, 1)
        column[: N_USERS // 4] = 0.0
        values[name] = column
    return values


def fake_run(name: str, seed: int, level: float, modalities=("text", "visual"), weights: bool = False,
             **knobs) -> Run:
    """A finished run whose users score around `level` (metrics.json = the rounded per-user means)."""
    raw = fake_params(seed=seed, **knobs)
    test = user_values(seed, level)
    valid = user_values(seed + 1000, level)
    per_user = pd.DataFrame({"userID": np.arange(N_USERS), **{f"test_{m}": v for m, v in test.items()},
                             **{f"valid_{m}": v for m, v in valid.items()}}).set_index("userID")
    metrics = {"model": raw["model"], "dataset": raw["dataset"], "seed": seed, "valid_metric": "recall@20",
               "best_epoch": 3, "epochs": 5,
               "test": {m: round(float(v.mean()), 4) for m, v in test.items()},
               "valid": {m: round(float(v.mean()), 4) for m, v in valid.items()}}
    full = {m: metrics["test"][m] for m in REPORTED}
    replaced = {name: {m: round(v * (0.9 if name == "text" else 0.7), 4) for m, v in full.items()}
                for name in modalities}
    if len(modalities) > 1:
        replaced["all"] = {m: round(v * 0.5, 4) for m, v in full.items()}
    summary = {}
    if weights:
        slots = {slot: {"mean": mid, "sd": 0.1, "min": mid - 0.3, "max": mid + 0.3, "q05": mid - 0.2,
                        "q25": mid - 0.1, "median": mid, "q75": mid + 0.1, "q95": mid + 0.2, "counts": [1, 2, 1]}
                 for slot, mid in (("text", 0.3), ("synergy", 0.5), ("visual", 0.4))}
        summary = {"users": N_USERS, "edges": [0.0, 0.3, 0.6, 0.9], "slots": slots}
    contribution = {"model": raw["model"], "dataset": raw["dataset"], "seed": seed, "split": "test",
                    "modalities": list(modalities), "full": full, "replaced": replaced,
                    "user_modality_weights": summary}
    epochs = np.arange(1, 6)
    curves = pd.DataFrame({"epoch": epochs, "loss": 1.0 / epochs, "bpr": 0.9 / epochs,
                           "valid_recall@20": level * (1 - np.exp(-epochs))})
    rev = hashlib.sha1(name.encode()).hexdigest()  # a commit id of its own, like a real experiment
    return Run(name, rev, flatten(raw), metrics, per_user, contribution, curves)


def paper_runs(seeds=(1, 2, 3)) -> list[Run]:
    """VIRAL (and two ablations) clearly above LightGCN, BPR lowest; three seeds each."""
    runs = []
    for seed in seeds:
        runs += [
            fake_run(f"bpr-{seed}", seed, 0.10, modalities=(), model="bpr"),
            fake_run(f"lightgcn-{seed}", seed, 0.15, modalities=(), model="lightgcn"),
            fake_run(f"viral-{seed}", seed, 0.20, weights=True, model="viral"),
            fake_run(f"concat-{seed}", seed, 0.18, model="viral", fusion="concat"),
            fake_run(f"original-{seed}", seed, 0.16, weights=True, model="viral", visual="original"),
        ]
    return runs


@pytest.fixture
def runs() -> list[Run]:
    return paper_runs()
