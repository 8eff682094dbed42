"""Run reports: how a stage ran (wall-clock seconds, throughput, what it reused), kept out of its outputs.

DVC re-runs every stage below one whose output hash changed, so a stage's outputs hold only what follows
from its inputs and params, byte for byte; anything that differs between two identical runs goes here
instead: `results/stages/<name>.json`, declared in dvc.yaml as a metric with `cache: false` under the
git-tracked `results/`, so `dvc metrics show/diff` and `dvc exp show` compare runs and revisions.
A stage that runs once per item (e.g. caption per prompt) names its reports `<stage>/<item>`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from viral.io import write_json

RUN_REPORT_DIR = Path("results") / "stages"


def run_report_path(name: str, root: str | Path = ".") -> Path:
    return Path(root) / RUN_REPORT_DIR / f"{name}.json"


def write_run_report(name: str, report: dict[str, Any], root: str | Path = ".") -> Path:
    """Write stage `name`'s run report (atomically) and return its path."""
    path = run_report_path(name, root)
    write_json(path, report)
    return path


def seconds_since(start: float) -> float:
    """Wall-clock seconds since `start` (a `time.perf_counter()` reading), rounded for reports."""
    return round(time.perf_counter() - start, 3)


def per_second(count: int, seconds: float) -> float | None:
    """`count` per second of `seconds`, rounded; None when no time was measured."""
    return round(count / seconds, 1) if seconds > 0 else None
