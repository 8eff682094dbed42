"""Build the report folder from collected runs: tables, figures, `report.html` (self-contained),
`report.md`, `summary.json` (every number of the tables) and `runs.csv` (one line per run used).
The folder is replaced whole, only once everything was written."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from viral.io import atomic_dir, atomic_path, write_json
from viral.report.collect import Run, VisualFeatures
from viral.report.figures import (backbone_figure, contribution_figure, contribution_summary, curves_figure,
                                  embedding_figure)
from viral.report.groups import group_runs, varying_knobs
from viral.report.page import Document, Figure, Section, to_html, to_markdown
from viral.report.tables import METRICS, row_label, summary, table1, table2

TITLE = "VIRAL: experiments report"
READING = (
    "Every number is a test metric at the run's best-validation epoch (full ranking over all items, the "
    "user's train items masked; Recall/NDCG@K as MMRec defines them), as the run's results/metrics.json "
    "reports it. Runs that differ only in `seed` form one row: the cell is the mean ± sample standard "
    "deviation (ddof=1) over those seeds (a lone seed shows its value only), the Seeds column says how many. Knobs that cannot change a result "
    "(threads, devices, caches) and knobs the row's model does not read are ignored when grouping; a row "
    "label shows every knob that varies between rows. The best mean of each column is bold."
)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def write_runs_csv(path: Path, runs: list[Run], labels: dict[str, str]) -> None:
    columns = ["name", "rev", "dataset", "model", "seed", "row", "best_epoch", "epochs",
               *(f"test_{m}" for m in METRICS), *(f"valid_{m}" for m in METRICS)]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for run in runs:
            writer.writerow([run.name, run.rev, run.dataset, run.model, run.seed, labels.get(run.rev, ""),
                             run.metrics.get("best_epoch"), run.metrics.get("epochs"),
                             *(run.metrics["test"][m] for m in METRICS), *(run.metrics["valid"][m] for m in METRICS)])


def build_report(runs: list[Run], out_dir: str | Path, features: list[VisualFeatures] | None = None,
                 max_items: int = 2000) -> dict[str, Any]:
    """Write the report of `runs` (and of `features` for the embedding figure) to `out_dir`; returns the
    summary (also written as summary.json)."""
    if not runs:
        raise ValueError("no finished experiments to report (see `dvc exp show`; queue some with viral.report.sweep)")
    out_dir = Path(out_dir)
    groups = group_runs(runs)
    knobs = varying_knobs(groups)
    labels = {run.rev: row_label(group, knobs) for group in groups for run in group.runs}
    result = summary(groups)
    with atomic_dir(out_dir) as tmp:
        figures = tmp / "figures"
        figures.mkdir()
        tables = [Section("Table 1: all models", [table1(groups)])]
        second = table2(groups)
        tables.append(Section("Table 2: VIRAL ablations",
                              [second] if second else ["No run of the proposed model: nothing to ablate."]))
        drawn = Section("Figures")
        missing = []
        caption = contribution_figure(groups, figures / "contribution.png")
        if caption:
            drawn.blocks.append(Figure(figures / "contribution.png", caption))
            result["contribution"] = contribution_summary(groups)
        else:
            missing.append("modality contribution (needs a run of a model that reads item features)")
        embedded = embedding_figure(features or [], figures / "embeddings.png", max_items)
        if embedded:
            drawn.blocks.append(Figure(figures / "embeddings.png", embedded[0]))
            result["silhouette"] = embedded[1]
        else:
            missing.append("visual embeddings (collected with the features; not with --no-embeddings)")
        caption = backbone_figure(groups, figures / "backbones.png")
        if caption:
            drawn.blocks.append(Figure(figures / "backbones.png", caption))
        else:
            missing.append("accuracy per VLM backbone (needs runs of the proposed model with two or more caption.model)")
        caption = curves_figure(groups, figures / "curves.png")
        if caption:
            drawn.blocks.append(Figure(figures / "curves.png", caption))
        if missing:
            drawn.blocks.append("Not drawn: " + "; ".join(missing) + ".")
        document = Document(TITLE, [Section("How to read it", [READING, f"{len(runs)} runs in {len(groups)} rows."]),
                                    *tables, drawn])
        (tmp / "report.md").write_text(to_markdown(document, tmp))
        (tmp / "report.html").write_text(to_html(document))
        write_json(tmp / "summary.json", _finite(result))
        write_runs_csv(tmp / "runs.csv", runs, labels)
    return result
