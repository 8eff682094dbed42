"""The paper's figures as PNG (matplotlib, Agg): modality contribution (Fig. 1), a 2-D projection of the
visual item features per `visual` setting (Fig. 4 top), accuracy per VLM backbone (Fig. 4 bottom) and
learning curves. Each function returns a one-line caption, or None when the runs hold nothing to draw."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from viral.io import atomic_path
from viral.report.collect import VisualFeatures
from viral.report.groups import PROPOSED, Group, differences, varying_knobs
from viral.report.stats import mean_sd
from viral.report.tables import row_label

VISUAL_ORDER = ("original", "vlm_plain", "vlm_title")
TOP_CATEGORIES = 10


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    _pyplot().close(fig)


def _contribution_values(group: Group, condition: str, metric: str) -> tuple[float, float]:
    """Mean and sd over seeds of the test `metric` with `condition` ("full" or a replaced modality)."""
    values = [run.contribution["full"][metric] if condition == "full" else
              run.contribution["replaced"][condition][metric] for run in group.runs]
    return mean_sd(values)


def _weight_stats(group: Group) -> list[dict[str, Any]]:
    """Box statistics of each learned per-user modality weight, averaged over the seeds."""
    summaries = [run.contribution.get("user_modality_weights") or {} for run in group.runs]
    if not all(summary.get("slots") for summary in summaries):
        return []
    boxes = []
    for slot in summaries[0]["slots"]:
        stat = {key: float(np.mean([s["slots"][slot][key] for s in summaries]))
                for key in ("q05", "q25", "median", "q75", "q95", "mean")}
        boxes.append({"label": slot, "whislo": stat["q05"], "q1": stat["q25"], "med": stat["median"],
                      "q3": stat["q75"], "whishi": stat["q95"], "mean": stat["mean"], "fliers": []})
    return boxes


def contribution_summary(groups: list[Group]) -> list[dict[str, Any]]:
    """The numbers behind Fig. 1: per multimodal configuration, mean and sd over seeds of each test metric
    as trained ("full") and with each modality replaced, and the mean learned weight of each slot."""
    knobs = varying_knobs(groups)
    found = []
    for group in groups:
        if not all(run.contribution.get("modalities") for run in group.runs):
            continue
        first = group.runs[0].contribution
        conditions = ["full", *first["replaced"]]
        found.append({"label": row_label(group, knobs), "dataset": group.dataset, "seeds": group.seeds,
                      "test": {condition: {metric: dict(zip(("mean", "sd"), _contribution_values(group, condition, metric)))
                                           for metric in first["full"]} for condition in conditions},
                      "weights": {box["label"]: box["mean"] for box in _weight_stats(group)}})
    return found


def contribution_figure(groups: list[Group], path: Path) -> str | None:
    """Fig. 1: test R@20 and N@20 of each multimodal configuration as trained and with each modality
    replaced by its mean item feature, and the learned per-user modality weights."""
    from matplotlib.transforms import blended_transform_factory

    knobs = varying_knobs(groups)
    multimodal = [g for g in groups if all(run.contribution.get("modalities") for run in g.runs)]
    if not multimodal:
        return None
    datasets = sorted({g.dataset for g in multimodal})
    weighted = [g for g in multimodal if _weight_stats(g)]
    columns = 3 if weighted else 2
    widest = max(sum(g.dataset == d for g in multimodal) for d in datasets)
    plt = _pyplot()
    # One panel per row: with a dozen configurations side by side the bars need the page's width.
    fig, panels = plt.subplots(len(datasets) * columns, 1, figsize=(max(7.0, 0.9 * widest + 2.5),
                                                                    3.8 * len(datasets) * columns + 0.6), squeeze=False)
    axes = [[panels[row * columns + column][0] for column in range(columns)] for row in range(len(datasets))]
    for row, dataset in enumerate(datasets):
        members = [g for g in multimodal if g.dataset == dataset]
        conditions = ["full", *members[0].runs[0].contribution["replaced"]]
        for column, metric in enumerate(("recall@20", "ndcg@20")):
            ax = axes[row][column]
            bar = 0.8 / len(conditions)
            for k, condition in enumerate(conditions):
                stats = [_contribution_values(g, condition, metric) if condition == "full" or
                         condition in g.runs[0].contribution["replaced"] else (math.nan, math.nan) for g in members]
                label = "as trained" if condition == "full" else f"{condition} → mean"
                ax.bar(np.arange(len(members)) + (k - (len(conditions) - 1) / 2) * bar, [s[0] for s in stats], bar,
                       yerr=[s[1] for s in stats], capsize=2, label=label if row == column == 0 else None)
            ax.set_xticks(np.arange(len(members)), [row_label(g, knobs) for g in members], rotation=20, ha="right",
                          fontsize=8)
            ax.set(ylabel=f"test {metric}", title=f"{dataset}: test {metric}")
        if weighted:
            ax = axes[row][2]
            at = blended_transform_factory(ax.transData, ax.transAxes)
            position = 0
            for group in (g for g in weighted if g.dataset == dataset):
                stats = _weight_stats(group)
                positions = list(range(position, position + len(stats)))
                ax.bxp(stats, positions=positions, showmeans=True)
                ax.text(np.mean(positions), 1.01, row_label(group, knobs), transform=at, ha="center", fontsize=8)
                position += len(stats) + 1
            ax.tick_params(axis="x", labelsize=8)
            ax.set_ylabel("weight (5/25/50/75/95 %, ▲ mean)")
            ax.set_title(f"{dataset}: per-user modality weights", pad=16)
    fig.legend(loc="upper center", ncol=4, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    _save(fig, path)
    return ("Modality contribution (Fig. 1): test metrics as trained and with one modality's input replaced by its "
            "mean item feature at evaluation (mean ± sd over seeds); boxes: the learned per-user modality weights "
            "(quantiles averaged over seeds).")


def _projection(matrix: np.ndarray, seed: int) -> np.ndarray:
    """t-SNE of the L2-normalised rows (PCA to 50 dimensions first), seeded. One thread: on a busy shared
    machine OpenMP's spinning workers made 60 points take 28 s instead of 2.4 s (measured)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    if x.shape[1] > 50 and len(x) > 50:
        x = PCA(n_components=50, random_state=seed).fit_transform(x)
    perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
    with threadpool_limits(1):
        return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(x)


def separation(matrix: np.ndarray, categories: np.ndarray) -> float:
    """Silhouette score of the categories in the feature space (cosine): how far apart the features put
    items of different categories, in [-1, 1]; NaN with fewer than two categories."""
    from sklearn.metrics import silhouette_score

    if len(set(categories)) < 2 or len(set(categories)) >= len(categories):
        return math.nan
    return float(silhouette_score(matrix, categories, metric="cosine"))


def embedding_figure(features: list[VisualFeatures], path: Path, max_items: int = 2000,
                     seed: int = 0) -> tuple[str, dict[str, dict[str, float]]] | None:
    """Fig. 4 top: t-SNE of each dataset's visual item features under each `visual` setting, coloured by
    item category (the most frequent ones; the rest grey). Returns the caption and the silhouette
    score of the categories per dataset and setting, on the same (sub)sample of items."""
    if not features:
        return None
    datasets = sorted({f.dataset for f in features})
    columns = max(sum(f.dataset == d for f in features) for d in datasets)
    plt = _pyplot()
    fig, axes = plt.subplots(len(datasets), columns, figsize=(4.6 * columns + 2.5, 4.4 * len(datasets)), squeeze=False)
    scores: dict[str, dict[str, float]] = {}
    for row, dataset in enumerate(datasets):
        views = sorted((f for f in features if f.dataset == dataset),
                       key=lambda f: VISUAL_ORDER.index(f.visual) if f.visual in VISUAL_ORDER else len(VISUAL_ORDER))
        n_items = len(views[0].categories)
        # Views of another item set (runs on another data_seed) cannot share the sample of items.
        views = [view for view in views if len(view.categories) == n_items]
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(n_items, size=min(n_items, max_items), replace=False))
        categories = views[0].categories[sample]
        names, counts = np.unique(categories, return_counts=True)
        top = [name for name in names[np.argsort(-counts, kind="stable")] if name][:TOP_CATEGORIES]
        colours = {name: plt.get_cmap("tab10")(k) for k, name in enumerate(top)}
        for column in range(columns):
            ax = axes[row][column]
            if column >= len(views):
                ax.axis("off")
                continue
            view = views[column]
            points = _projection(view.matrix[sample], seed)
            score = separation(view.matrix[sample], categories)
            scores.setdefault(dataset, {})[view.visual] = score
            other = ~np.isin(categories, top)
            if other.any():
                ax.scatter(points[other, 0], points[other, 1], s=4, c="lightgrey", label="other")
            for name in top:
                chosen = categories == name
                ax.scatter(points[chosen, 0], points[chosen, 1], s=5, color=colours[name], label=name)
            ax.set(title=f"{dataset}: visual={view.visual}\nsilhouette {score:.3f}", xticks=[], yticks=[])
        axes[row][len(views) - 1].legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    _save(fig, path)
    caption = (f"Visual item embeddings per `visual` setting (Fig. 4 top): t-SNE of up to {max_items} items, coloured "
               f"by category (the {TOP_CATEGORIES} most frequent); silhouette = cosine silhouette score of the categories "
               "in the original feature space (higher: categories better separated).")
    return caption, scores


def backbone_figure(groups: list[Group], path: Path) -> str | None:
    """Fig. 4 bottom: test R@20 and N@20 of the proposed model per VLM backbone (`caption.model`),
    among its configurations that differ from the defaults at most in `caption.model`."""
    knobs = varying_knobs(groups)
    rows = [g for g in groups if g.model == PROPOSED and set(differences(g, knobs)) <= {"caption.model"}
            and "caption.model" in g.knobs]
    datasets = sorted({g.dataset for g in rows if sum(r.dataset == g.dataset for r in rows) > 1})
    if not datasets:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.2), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        members = sorted((g for g in rows if g.dataset == dataset), key=lambda g: str(g.knobs["caption.model"]))
        for k, metric in enumerate(("recall@20", "ndcg@20")):
            stats = [mean_sd(g.values(metric)) for g in members]
            ax.bar(np.arange(len(members)) + (k - 0.5) * 0.4, [s[0] for s in stats], 0.4, yerr=[s[1] for s in stats],
                   capsize=3, label=f"test {metric}")
        ax.set_xticks(np.arange(len(members)), [str(g.knobs["caption.model"]).split("/")[-1] for g in members],
                      rotation=20, ha="right", fontsize=8)
        ax.set(title=f"{dataset}: {PROPOSED} per VLM backbone", ylabel="mean ± sd over seeds")
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return "Accuracy per VLM backbone (Fig. 4 bottom): test R@20 and N@20 of VIRAL by `caption.model` (mean ± sd over seeds)."


def curves_figure(groups: list[Group], path: Path) -> str | None:
    """Learning curves: training loss and the validation metric the run selects on, per epoch; one
    colour per configuration, one line per seed."""
    if not groups:
        return None
    knobs = varying_knobs(groups)
    datasets = sorted({g.dataset for g in groups})
    plt = _pyplot()
    fig, axes = plt.subplots(len(datasets), 2, figsize=(13, 4.2 * len(datasets)), squeeze=False)
    widest = max(sum(g.dataset == d for g in groups) for d in datasets)
    colours = plt.get_cmap("tab10" if widest <= 10 else "tab20")  # tab20 pairs similar shades: only when needed
    for row, dataset in enumerate(datasets):
        loss_ax, valid_ax = axes[row]
        for k, group in enumerate(g for g in groups if g.dataset == dataset):
            colour = colours(k % colours.N)
            for n, run in enumerate(group.runs):
                metric = f"valid_{run.metrics.get('valid_metric', 'recall@20')}"
                label = row_label(group, knobs) if n == 0 else None
                curves = run.curves
                loss_ax.plot(curves["epoch"], curves["loss"], color=colour, lw=0.8, label=label)
                if metric in curves:
                    evaluated = curves.dropna(subset=[metric])
                    valid_ax.plot(evaluated["epoch"], evaluated[metric], color=colour, lw=0.8, label=label)
        loss_ax.set(xlabel="epoch", ylabel="training loss", title=f"{dataset}: training loss", yscale="log")
        valid_ax.set(xlabel="epoch", ylabel="validation metric (the run's valid_metric)", title=f"{dataset}: validation")
        valid_ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    _save(fig, path)
    return "Learning curves: training loss and the validation metric each run selects on, one line per seed."
