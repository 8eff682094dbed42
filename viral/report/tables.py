"""The paper's tables from grouped runs: Table 1 (every model, VIRAL's improvement over the best
baseline with paired tests over users and Welch's test over seeds) and Table 2 (VIRAL's ablations).
Cells are mean ± sample sd of the test metric over seeds (each seed's value as its metrics.json reports
it); the best mean of each column is bold. Tables are plain data here; `page` renders them."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from viral.report.groups import (PROPOSED, Group, differences, is_reference, model_order, row_key,
                                 varying_knobs)
from viral.report.stats import PairedTest, align_users, mean_sd, paired_test, welch

METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
SHORT = {"recall@10": "R@10", "recall@20": "R@20", "ndcg@10": "N@10", "ndcg@20": "N@20"}
# Table 2 row names of the paper, by the knob value that departs from VIRAL's defaults.
ABLATION_NAMES = {
    ("visual", "original"): "Image: original CNN feature",
    ("visual", "vlm_plain"): "Image: VLM without title",
    ("fusion", "pooling"): "Fusion: pooling",
    ("fusion", "concat"): "Fusion: concat",
    ("fusion", "weighted_concat"): "Fusion: weighted concat",
}
ABLATION_ORDER = ("visual", "fusion", "caption.model")
TABLE2_DELTA = "recall@20"  # the metric whose change against VIRAL Table 2 tests


@dataclass
class Cell:
    text: str
    bold: bool = False


@dataclass
class Table:
    """`columns` under optional `spans` (group label, number of columns), then rows of cells."""

    title: str
    columns: list[str]
    rows: list[list[Cell]]
    spans: list[tuple[str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fmt_mean_sd(values: list[float]) -> str:
    """"mean ± sd" over seeds; a single seed has no spread to show, so only its value."""
    mean, sd = mean_sd(values)
    return f"{mean:.4f} ± {sd:.4f}" if len(values) > 1 else f"{mean:.4f}"


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def value_label(key: str, value: Any) -> str:
    return f"{key}={value}"


def row_label(group: Group, knobs: list[str]) -> str:
    """The model, then each knob that varies between rows where this row departs from the code's
    default (e.g. "viral, fusion=concat"); unique, since two rows differ in some varying knob."""
    shown = [value_label(key, value) for key, value in differences(group, knobs).items()]
    return ", ".join([group.model, *shown])


def ablation_label(group: Group, knobs: list[str]) -> str:
    changed = differences(group, knobs)
    if not changed:
        return "VIRAL"
    names = [ABLATION_NAMES.get((key, value)) or (f"VLM: {value}" if key == "caption.model" else value_label(key, value))
             for key, value in changed.items()]
    return ", ".join(names)


def _bold_best(rows: list[list[Cell]], means: list[list[float]]) -> None:
    """Bold, in each column, the cell(s) with the highest mean (columns without a number are skipped)."""
    for column in range(len(means[0]) if means else 0):
        values = [row[column] for row in means]
        finite = [v for v in values if not math.isnan(v)]
        if not finite:
            continue
        best = max(finite)
        for row, value in zip(rows, values):
            if value == best:
                row[column].bold = True


def _metric_cells(group: Group | None) -> tuple[list[Cell], list[float]]:
    if group is None:
        return [Cell("–") for _ in METRICS], [math.nan] * len(METRICS)
    return ([Cell(fmt_mean_sd(group.values(m))) for m in METRICS],
            [mean_sd(group.values(m))[0] for m in METRICS])


@dataclass
class Comparison:
    """The proposed model's reference row against the best baseline on one metric of one dataset."""

    dataset: str
    metric: str
    proposed: Group
    baseline: Group
    improvement: float          # mean over seeds, relative
    users: PairedTest           # per-user means over seeds, paired by userID
    seeds_t: float
    seeds_p: float              # Welch's t-test over the per-seed values


def same_split(a: Group, b: Group) -> bool:
    """Whether two rows were evaluated on the same users and items (same dataset and data_seed), which
    pairing users requires."""
    return a.dataset == b.dataset and a.knobs.get("data_seed") == b.knobs.get("data_seed")


def compare(proposed: Group, baseline: Group, metric: str) -> Comparison:
    ours, theirs = proposed.values(metric), baseline.values(metric)
    column = f"test_{metric}"
    users = paired_test(*align_users(proposed.user_means(column), baseline.user_means(column)))
    t, p = welch(ours, theirs)
    improvement = mean_sd(ours)[0] / mean_sd(theirs)[0] - 1 if mean_sd(theirs)[0] else math.nan
    return Comparison(proposed.dataset, metric, proposed, baseline, improvement, users, t, p)


def comparisons(groups: list[Group]) -> list[Comparison]:
    """For each dataset with a reference VIRAL row and a baseline on the same split: one Comparison per
    metric, against the baseline row with the best mean on that metric."""
    knobs = varying_knobs(groups)
    found = []
    for dataset in sorted({g.dataset for g in groups}):
        members = [g for g in groups if g.dataset == dataset]
        reference = next((g for g in members if is_reference(g, knobs)), None)
        baselines = [g for g in members if g.model != PROPOSED and reference is not None and same_split(g, reference)]
        if reference is None or not baselines:
            continue
        for metric in METRICS:
            best = max(baselines, key=lambda g: mean_sd(g.values(metric))[0])
            found.append(compare(reference, best, metric))
    return found


def table1(groups: list[Group]) -> Table:
    """Rows = model (plus every knob that varies), columns = R@10, R@20, N@10, N@20 per dataset."""
    knobs = varying_knobs(groups)
    datasets = sorted({g.dataset for g in groups})
    rows_by_key: dict[tuple, dict[str, Group]] = {}
    # Registry order, the proposed model last and its default row at the bottom, above the comparison.
    for group in sorted(groups, key=lambda g: (model_order(g.model), is_reference(g, knobs), row_label(g, knobs))):
        rows_by_key.setdefault(row_key(group, knobs), {})[group.dataset] = group
    rows, means = [], []
    for by_dataset in rows_by_key.values():
        first = next(iter(by_dataset.values()))
        cells, row_means = [Cell(row_label(first, knobs))], []
        for dataset in datasets:
            metric_cells, metric_means = _metric_cells(by_dataset.get(dataset))
            cells += metric_cells
            row_means += metric_means
        cells.append(Cell("/".join(str(len(by_dataset[d].runs)) if d in by_dataset else "0" for d in datasets)))
        rows.append(cells)
        means.append([math.nan, *row_means, math.nan])
    _bold_best(rows, means)
    found = comparisons(groups)
    notes = []
    if found:
        rows += _comparison_rows(found, datasets)
        notes.append("Improvement: the reference VIRAL row's mean over the best baseline's mean in that column. "
                     "Users: Wilcoxon signed-rank (zero differences dropped) and paired t-test on each user's metric "
                     "averaged over seeds, paired by userID; seeds: Welch's t-test on the per-seed values. "
                     "Two-sided p-values, no multiple-comparison correction.")
    else:
        notes.append(f"No comparison: it needs a {PROPOSED} run at the default settings and a baseline on the same dataset.")
    columns = ["Model", *(SHORT[m] for _ in datasets for m in METRICS), "Seeds"]
    spans = [("", 1), *((dataset, len(METRICS)) for dataset in datasets), ("", 1)]
    return Table("Table 1: test metrics over seeds (mean ± sd)", columns, rows, spans, notes)


def _comparison_rows(found: list[Comparison], datasets: list[str]) -> list[list[Cell]]:
    lookup = {(c.dataset, c.metric): c for c in found}
    labels = {
        "improvement": f"{PROPOSED} vs best baseline",
        "wilcoxon": "p, Wilcoxon over users",
        "t": "p, paired t over users",
        "welch": "p, Welch t over seeds",
    }
    rows = []
    for kind, label in labels.items():
        cells = [Cell(label)]
        for dataset in datasets:
            for metric in METRICS:
                c = lookup.get((dataset, metric))
                if c is None:
                    cells.append(Cell("–"))
                elif kind == "improvement":
                    cells.append(Cell(f"{c.improvement:+.1%} vs {c.baseline.model}"))
                elif kind == "wilcoxon":
                    cells.append(Cell(f"{fmt_p(c.users.wilcoxon_p)} (n={c.users.nonzero})"))
                elif kind == "t":
                    cells.append(Cell(f"{fmt_p(c.users.t_p)} (n={c.users.n})"))
                else:
                    cells.append(Cell(fmt_p(c.seeds_p)))
        cells.append(Cell(""))
        rows.append(cells)
    return rows


def _ablation_order(group: Group, knobs: list[str]) -> tuple:
    changed = differences(group, knobs)
    if not changed:
        return (len(ABLATION_ORDER) + 1,)  # VIRAL last, as in the paper
    first = min((ABLATION_ORDER.index(k) if k in ABLATION_ORDER else len(ABLATION_ORDER)) for k in changed)
    return (first, str(sorted(changed.items())))


def table2(groups: list[Group]) -> Table | None:
    """VIRAL's ablations: one row per configuration of the proposed model, labelled by what departs from
    its defaults, with the change of test R@20 against the default row and its Wilcoxon p over users."""
    knobs = varying_knobs(groups)
    ours = [g for g in groups if g.model == PROPOSED]
    if not ours:
        return None
    datasets = sorted({g.dataset for g in ours})
    rows_by_label: dict[str, dict[str, Group]] = {}
    for group in sorted(ours, key=lambda g: _ablation_order(g, knobs)):
        rows_by_label.setdefault(ablation_label(group, knobs), {})[group.dataset] = group
    references = {g.dataset: g for g in ours if is_reference(g, knobs)}
    rows, means = [], []
    for label, by_dataset in rows_by_label.items():
        cells, row_means = [Cell(label)], [math.nan]
        for dataset in datasets:
            group = by_dataset.get(dataset)
            metric_cells, metric_means = _metric_cells(group)
            cells += metric_cells
            row_means += metric_means
            reference = references.get(dataset)
            if group is None or reference is None or group is reference or not same_split(group, reference):
                cells += [Cell("–"), Cell("–")]
            else:
                c = compare(group, reference, TABLE2_DELTA)
                cells += [Cell(f"{c.improvement:+.1%}"), Cell(fmt_p(c.users.wilcoxon_p))]
            row_means += [math.nan, math.nan]
        rows.append(cells)
        means.append(row_means)
    _bold_best(rows, means)
    per_dataset = [*(SHORT[m] for m in METRICS), f"Δ{SHORT[TABLE2_DELTA]}", "p"]
    columns = ["Variant", *(name for _ in datasets for name in per_dataset)]
    spans = [("", 1), *((dataset, len(per_dataset)) for dataset in datasets)]
    notes = [f"Δ{SHORT[TABLE2_DELTA]}: mean test {TABLE2_DELTA} relative to the VIRAL row (the defaults); p: Wilcoxon "
             "signed-rank over users (each user's value averaged over seeds)."]
    if not references:
        notes.append("No VIRAL row at the default settings: Δ and p need one.")
    return Table("Table 2: VIRAL ablations, test metrics over seeds (mean ± sd)", columns, rows, spans, notes)


def summary(groups: list[Group]) -> dict[str, Any]:
    """Machine-readable companion of the tables: every group's seeds, means and sds, and the comparisons."""
    knobs = varying_knobs(groups)
    return {
        "groups": [{"label": row_label(g, knobs), "dataset": g.dataset, "model": g.model, "knobs": g.knobs,
                    "seeds": g.seeds, "runs": [r.name for r in g.runs],
                    "test": {m: dict(zip(("mean", "sd"), mean_sd(g.values(m)))) for m in METRICS}}
                   for g in groups],
        "comparisons": [{"dataset": c.dataset, "metric": c.metric, "proposed": row_label(c.proposed, knobs),
                         "baseline": row_label(c.baseline, knobs), "improvement": c.improvement,
                         "users": c.users.__dict__, "seeds": {"welch_t": c.seeds_t, "welch_p": c.seeds_p}}
                        for c in comparisons(groups)],
    }
