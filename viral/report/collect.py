"""Collect finished experiments: `dvc exp show --json` gives each experiment's params and metrics; its
per-user results, modality contribution and learning curves are read at the experiment's revision
(through `dvc.api.DVCFileSystem`, so DVC-cached outputs come from the cache).

Collection is separate from building: the report is built from a list of `Run`s (tests make them by
hand), and every check here fails with one line naming the experiment.
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from viral.config import ConfigError
from viral.params import parse_params

log = logging.getLogger(__name__)

METRICS_FILE = "results/metrics.json"
PER_USER_FILE = "results/per_user.parquet"
CONTRIBUTION_FILE = "results/contribution.json"
CURVES_FILE = "results/plots/curves.csv"
REPORTED = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")  # the paper's table columns

# (revision, path in the repository) -> a local copy of that file; FileNotFoundError when it is absent.
Fetch = Callable[[str, str], Path]


class CollectError(Exception):
    """An experiment that cannot be reported; the message is one line naming it."""


@dataclass
class Entry:
    """One finished experiment as `dvc exp show` lists it: nested params.yaml and metrics.json."""

    name: str
    rev: str
    params: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def label(self) -> str:
        return "workspace" if self.rev == "workspace" else f"experiment {self.name} ({self.rev[:7]})"


@dataclass
class Run:
    """Everything the report reads of one trained run. `params` is params.yaml flattened to dotted keys
    ("train.epochs", "models.viral.synergy"); `per_user` is indexed by userID."""

    name: str
    rev: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    per_user: pd.DataFrame
    contribution: dict[str, Any]
    curves: pd.DataFrame

    @property
    def dataset(self) -> str:
        return self.params["dataset"]

    @property
    def model(self) -> str:
        return self.params["model"]

    @property
    def seed(self) -> int:
        return self.params["seed"]


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level of dotted keys; lists become tuples (hashable, comparable)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = tuple(value) if isinstance(value, list) else value
    return flat


def _file_data(results: dict[str, Any], path: str, label: str) -> dict[str, Any]:
    found = (results or {}).get(path)
    if found is None:
        raise CollectError(f"{label}: {path}: not in the experiment (was the train stage run?)")
    if found.get("error"):
        raise CollectError(f"{label}: {path}: {found['error'].get('msg') or found['error']}")
    return found.get("data") or {}


def _entry(state: dict[str, Any], name: str) -> Entry:
    rev = state.get("rev") or "?"
    label = Entry(name, rev, {}, {}).label
    if state.get("error"):
        raise CollectError(f"{label}: {state['error'].get('msg') or state['error']}")
    data = state.get("data")
    if not data:
        raise CollectError(f"{label}: dvc exp show gives no data for it")
    params = _file_data(data.get("params"), "params.yaml", label)
    metrics = _file_data(data.get("metrics"), METRICS_FILE, label)
    return Entry(name, rev, params, metrics)


def entries(exp_show: list[dict[str, Any]], workspace: bool = False) -> list[Entry]:
    """The finished experiments of `dvc exp show --json` output (plus the workspace's own results with
    `workspace`). Queued, running and failed experiments are skipped with a log line; a finished one
    without params or metrics is a CollectError."""
    found = []
    for baseline in exp_show:
        if baseline.get("rev") == "workspace":
            if workspace:
                found.append(_entry(baseline, "workspace"))
            continue
        for exp_range in baseline.get("experiments") or []:
            executor = exp_range.get("executor") or {}
            name = exp_range.get("name") or executor.get("name") or "?"
            state = executor.get("state", "success")
            if state != "success":
                log.info("experiment %s is %s: skipped", name, state)
                continue
            revs = exp_range.get("revs") or []
            if not revs:
                raise CollectError(f"experiment {name}: dvc exp show lists no revision for it")
            found.append(_entry(revs[0], name))
    return found


def _read(fetch: Fetch, entry: Entry, path: str, reader: Callable[[Path], Any]) -> Any:
    try:
        local = fetch(entry.rev, path)
    except FileNotFoundError:
        raise CollectError(f"{entry.label}: {path}: not found at this revision (trained before the report "
                           "outputs existed? re-run it)") from None
    try:
        return reader(local)
    except Exception as err:  # any unreadable file is reported the same way: one line naming it
        raise CollectError(f"{entry.label}: {path}: unreadable ({type(err).__name__}: {err})".splitlines()[0]) from None


def _require(condition: bool, entry: Entry, message: str) -> None:
    if not condition:
        raise CollectError(f"{entry.label}: {message}")


def load_run(entry: Entry, fetch: Fetch) -> Run:
    """Validate `entry` and read its per-user results, contribution and curves."""
    try:
        parse_params(entry.params, source=f"{entry.label}: params.yaml")
    except ConfigError as err:
        raise CollectError(str(err).splitlines()[0]) from None
    params = flatten(entry.params)
    metrics = entry.metrics
    for split in ("valid", "test"):
        missing = [name for name in REPORTED if not isinstance((metrics.get(split) or {}).get(name), (int, float))]
        _require(not missing, entry, f"{METRICS_FILE}: {split} lacks {', '.join(missing)}")
    for key in ("model", "dataset", "seed"):
        _require(metrics.get(key) == params[key], entry,
                 f"{METRICS_FILE}: {key} is {metrics.get(key)!r} but params.yaml says {params[key]!r}")
    per_user = _read(fetch, entry, PER_USER_FILE, pd.read_parquet)
    columns = ["userID", *(f"test_{name}" for name in REPORTED)]
    missing = [c for c in columns if c not in per_user.columns]
    _require(not missing, entry, f"{PER_USER_FILE}: columns {', '.join(missing)} missing")
    contribution = _read(fetch, entry, CONTRIBUTION_FILE, lambda p: json.loads(p.read_text()))
    _require(isinstance(contribution, dict) and {"full", "replaced", "seed"} <= set(contribution), entry,
             f"{CONTRIBUTION_FILE}: expected the keys full, replaced and seed")
    _require(contribution["seed"] == params["seed"], entry,
             f"{CONTRIBUTION_FILE}: seed {contribution['seed']} but params.yaml says {params['seed']}")
    curves = _read(fetch, entry, CURVES_FILE, pd.read_csv)
    _require("epoch" in curves.columns, entry, f"{CURVES_FILE}: no epoch column")
    return Run(entry.name, entry.rev, params, metrics, per_user.set_index("userID"), contribution, curves)


@dataclass
class VisualFeatures:
    """One dataset's visual item features under one `visual` setting, with each item's category."""

    dataset: str
    visual: str
    matrix: np.ndarray
    categories: np.ndarray


def item_category(paths, level: int = -1) -> str:
    """Element `level` of an item's first category path (-1: the most specific), "" when it has none."""
    if paths is None or len(paths) == 0 or len(paths[0]) == 0:
        return ""
    first = list(paths[0])
    return first[max(-len(first), min(level, len(first) - 1))]


def visual_features(runs: list[Run], fetch: Fetch, level: int = -1) -> list[VisualFeatures]:
    """The visual features of every (dataset, visual) the runs cover, read at the first run with that
    setting, and the categories of the prepared items at the same revision."""
    from viral.encode.store import read_features

    found = []
    seen = set()
    for run in runs:
        key = (run.dataset, run.params["visual"])
        if key in seen:
            continue
        seen.add(key)
        entry = Entry(run.name, run.rev, {}, {})
        matrix = _read(fetch, entry, f"data/features/{run.dataset}/visual.parquet", lambda p: read_features(p)[0])
        items = _read(fetch, entry, f"data/prepared/{run.dataset}/items.parquet",
                      lambda p: pd.read_parquet(p, columns=["itemID", "categories"]))
        _require(len(items) == len(matrix), entry, f"data/prepared/{run.dataset}/items.parquet: {len(items)} items, "
                 f"but the visual features have {len(matrix)}")
        categories = np.array([item_category(c, level) for c in items.sort_values("itemID")["categories"]])
        found.append(VisualFeatures(run.dataset, run.params["visual"], matrix, categories))
    return found


class DvcRepository:
    """The experiments of the DVC repository at `root`, and a Fetch reading files at their revisions."""

    def __init__(self, root: str | Path = ".") -> None:
        self.root = Path(root).resolve()
        self._tmp = tempfile.TemporaryDirectory(prefix="viral-report-")
        self._filesystems: dict[str, Any] = {}

    def __enter__(self) -> "DvcRepository":
        return self

    def __exit__(self, *exc) -> None:
        self._tmp.cleanup()

    def head(self) -> str:
        """HEAD's commit as git itself resolves it. DVC is given this sha rather than "HEAD": in a git
        worktree, `dvc exp show` once listed another worktree's HEAD while that one was busy (seen here)."""
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=self.root, capture_output=True, text=True)
        if done.returncode:
            raise CollectError(f"{self.root}: not a git repository with a commit ({done.stderr.strip()})")
        return done.stdout.strip()

    def exp_show(self, all_commits: bool = False, revs: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """`dvc exp show --json` of HEAD's experiments (or of `revs`, or of every commit)."""
        command = [sys.executable, "-m", "dvc", "exp", "show", "--json", "--no-fetch"]
        command += ["--all-commits"] if all_commits else [arg for rev in (revs or (self.head(),))
                                                          for arg in ("--rev", rev)]
        done = subprocess.run(command, cwd=self.root, capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise CollectError(f"dvc exp show failed in {self.root}: {last}")
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError:
            raise CollectError(f"dvc exp show printed no JSON: {done.stdout[:80]!r}") from None

    def fetch(self, rev: str, path: str) -> Path:
        if rev == "workspace":
            local = self.root / path
            if not local.is_file():
                raise FileNotFoundError(path)
            return local
        from dvc.api import DVCFileSystem

        fs = self._filesystems.get(rev)
        if fs is None:
            fs = self._filesystems[rev] = DVCFileSystem(str(self.root), rev=rev)
        local = Path(self._tmp.name) / rev / path
        local.parent.mkdir(parents=True, exist_ok=True)
        if not fs.isfile(path):
            raise FileNotFoundError(path)
        fs.get_file(path, str(local))
        return local


def select(found: list[Entry], names: tuple[str, ...]) -> list[Entry]:
    """The entries named in `names` (all when empty); a name that is not there is a CollectError."""
    if not names:
        return found
    known = {entry.name for entry in found}
    missing = [name for name in names if name not in known]
    if missing:
        raise CollectError(f"experiment {missing[0]}: not found among the finished experiments "
                           f"({', '.join(sorted(known)) or 'none'})")
    return [entry for entry in found if entry.name in names]


def collect(repository: DvcRepository, names: tuple[str, ...] = (), all_commits: bool = False,
            revs: tuple[str, ...] = (), workspace: bool = False) -> list[Run]:
    """The finished experiments of `repository` (optionally only `names`) as Runs."""
    found = select(entries(repository.exp_show(all_commits, revs), workspace), names)
    runs = []
    for entry in found:
        runs.append(load_run(entry, repository.fetch))
        log.info("collected %s: %s seed %s, test recall@20 %.4f", entry.label, runs[-1].model, runs[-1].seed,
                 runs[-1].metrics["test"]["recall@20"])
    return runs
