"""The report folder built from fake experiment records: files, self-contained HTML, markdown, figures,
and the command line's one-line errors."""
import csv
import json
import re

import numpy as np
import pytest

from viral.report import __main__ as cli
from viral.report.build import build_report
from viral.report.collect import CollectError, VisualFeatures
from viral.report.figures import backbone_figure, contribution_figure, embedding_figure, separation
from viral.report.groups import group_runs

from .conftest import fake_run, paper_runs


def fake_features(n_items=60):
    """Two categories that the VLM features separate and the original ones do not."""
    rng = np.random.default_rng(0)
    categories = np.array(["Bibs", "Socks"] * (n_items // 2))
    centres = np.where(categories[:, None] == "Bibs", 1.0, -1.0) * np.ones((1, 8))
    vlm = (centres + 0.1 * rng.normal(size=(n_items, 8))).astype(np.float32)
    original = rng.normal(size=(n_items, 8)).astype(np.float32)
    return [VisualFeatures("synthetic", "vlm_title", vlm, categories),
            VisualFeatures("synthetic", "original", original, categories)]


def test_the_report_folder_holds_tables_figures_and_a_self_contained_page(tmp_path, runs):
    out = tmp_path / "reports"
    result = build_report(runs, out, fake_features())
    assert {p.name for p in out.iterdir()} == {"report.html", "report.md", "summary.json", "runs.csv", "figures"}
    assert {p.name for p in (out / "figures").iterdir()} == {"contribution.png", "embeddings.png", "curves.png"}
    page = (out / "report.html").read_text()
    # Nothing to fetch: every src/href is a data URI, no script, no stylesheet link.
    assert re.findall(r'(?:src|href)="(?!data:image/png;base64,)', page) == []
    assert "<script" not in page and "<link" not in page and page.count("data:image/png;base64,") == 3
    assert "<b>0.1606 ± 0.0070</b>" in page and "Image: original CNN feature" in page
    markdown = (out / "report.md").read_text()
    assert "| viral | **0.1490 ± 0.0015** | **0.1606 ± 0.0070** |" in markdown
    assert "![Modality contribution" in markdown and "(figures/embeddings.png)" in markdown
    assert "accuracy per VLM backbone" in markdown  # named as not drawn, with what it needs
    summary = json.loads((out / "summary.json").read_text())
    assert summary["silhouette"]["synthetic"]["vlm_title"] > summary["silhouette"]["synthetic"]["original"]
    assert summary == json.loads(json.dumps(result, default=list)) | {"silhouette": summary["silhouette"]}
    viral = next(c for c in summary["contribution"] if c["label"] == "viral")
    full = [r.contribution["full"]["recall@20"] for r in runs if r.name.startswith("viral-")]
    assert viral["test"]["full"]["recall@20"]["mean"] == pytest.approx(np.mean(full))
    assert viral["test"]["visual"]["recall@20"]["mean"] == pytest.approx(np.mean([round(v * 0.7, 4) for v in full]))
    assert viral["weights"] == pytest.approx({"text": 0.3, "synergy": 0.5, "visual": 0.4})
    assert {c["label"] for c in summary["contribution"]} == {"viral", "viral, fusion=concat", "viral, visual=original"}
    with open(out / "runs.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 15 and {r["row"] for r in rows} == {"bpr", "lightgcn", "viral", "viral, fusion=concat",
                                                            "viral, visual=original"}


def test_a_rebuild_replaces_the_folder_and_a_failed_build_keeps_the_old_one(tmp_path, runs, monkeypatch):
    out = tmp_path / "reports"
    one_seed = runs[:5]
    build_report(one_seed, out)
    (out / "stale.txt").write_text("from an older report")
    build_report(one_seed[:2], out)
    assert not (out / "stale.txt").exists()
    before = (out / "report.md").read_text()
    monkeypatch.setattr("viral.report.build.curves_figure", lambda *a: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        build_report(one_seed, out)
    assert (out / "report.md").read_text() == before
    with pytest.raises(ValueError, match="no finished experiments"):
        build_report([], out)


def test_figures_are_skipped_when_the_runs_hold_nothing_to_draw(tmp_path):
    id_only = group_runs([fake_run("l", 1, 0.1, modalities=(), model="lightgcn")])
    assert contribution_figure(id_only, tmp_path / "c.png") is None
    assert backbone_figure(id_only, tmp_path / "b.png") is None
    assert embedding_figure([], tmp_path / "e.png") is None
    assert not any(tmp_path.iterdir())


def test_backbone_figure_needs_two_caption_models(tmp_path):
    runs = paper_runs(seeds=(1, 2)) + [fake_run("qwen3b", s, 0.19, **{"caption.model": "Qwen/Qwen2.5-VL-3B-Instruct"})
                                       for s in (1, 2)]
    assert backbone_figure(group_runs(runs), tmp_path / "b.png").startswith("Accuracy per VLM backbone")
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_separation_is_the_silhouette_of_the_categories():
    features = fake_features()
    assert separation(features[0].matrix, features[0].categories) > 0.9
    assert abs(separation(features[1].matrix, features[1].categories)) < 0.1
    assert np.isnan(separation(features[0].matrix, np.array(["a"] * 60)))


def test_the_command_line_reports_a_bad_experiment_in_one_line(monkeypatch, capsys, tmp_path):
    def broken(*args, **kwargs):
        raise CollectError("experiment exp-1 (abc1234): results/per_user.parquet: not found at this revision")

    monkeypatch.setattr(cli, "collect", broken)
    assert cli.main(["--repo", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: report: experiment exp-1 (abc1234): results/per_user.parquet: not found at this revision"
    monkeypatch.setattr(cli, "collect", lambda *args, **kwargs: [])
    assert cli.main(["--repo", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert "no finished experiments" in capsys.readouterr().err


def test_the_command_line_builds_from_collected_runs(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "collect", lambda *args, **kwargs: paper_runs(seeds=(1, 2)))
    assert cli.main(["--repo", str(tmp_path), "--out", str(tmp_path / "out"), "--no-embeddings"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (line["runs"], line["rows"], line["comparisons"]) == (10, 5, 4)
    assert (tmp_path / "out" / "report.html").is_file()
