import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "table2.py"
spec = importlib.util.spec_from_file_location("table2", SCRIPT)
table2 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(table2)


def test_mean_and_sample_sd():
    mean, sd = table2.mean_sd([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2)
    assert sd == pytest.approx(0.1)  # sqrt((0.01 + 0 + 0.01) / 2)
    assert table2.mean_sd([0.5]) == (0.5, 0.0)


def test_every_row_gets_its_params_and_seeds():
    calls = []

    def fake(params, seed):
        calls.append((params, seed))
        if params["visual"] == "original":
            raise LookupError("no CNN features")
        return {"recall@20": seed / 1000, "ndcg@20": 0.01}

    results, notes = table2.run_table(list(table2.ROWS), "synthetic", [1, 2], fake)
    assert notes == {"Original visual": "skipped: no CNN features"}
    assert set(results) == set(table2.ROWS) - {"Original visual"}
    by_row = {(p["model"], p["fusion"], p["visual"]) for p, _ in calls}
    assert ("viral", "pooling", "vlm_title") in by_row and ("lightgcn", "viral", "vlm_title") in by_row
    assert ("viral", "viral", "vlm_plain") in by_row
    assert all(p["seed"] == str(seed) and p["dataset"] == "synthetic" for p, seed in calls)
    text = table2.markdown_table(results, notes)
    assert "| VIRAL | 2 | 0.0015 ± 0.0007 | 0.0100 ± 0.0000 |" in text
    assert "| Original visual | 0 | skipped: no CNN features |" in text
    assert len(text.splitlines()) == 2 + len(table2.ROWS)


def test_dvc_runner_passes_every_knob_and_reads_the_test_metrics(tmp_path, monkeypatch):
    seen = []

    def fake_run(command, cwd):
        seen.append(command)
        (Path(cwd) / "results").mkdir(exist_ok=True)
        metrics = {"test": {"recall@20": 0.25, "ndcg@20": 0.125}, "valid": {"recall@20": 0.3}}
        (Path(cwd) / "results" / "metrics.json").write_text(json.dumps(metrics))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(table2.subprocess, "run", fake_run)
    run = table2.dvc_runner(tmp_path)
    assert run(table2.row_params("Concat", "synthetic", 7), 7) == {"recall@20": 0.25, "ndcg@20": 0.125}
    assert seen == [["dvc", "exp", "run", "-S", "dataset=synthetic", "-S", "model=viral", "-S", "fusion=concat",
                     "-S", "visual=vlm_title", "-S", "seed=7"]]
    monkeypatch.setattr(table2.subprocess, "run", lambda command, cwd: subprocess.CompletedProcess(command, 2))
    with pytest.raises(RuntimeError, match="exited with 2"):
        run(table2.row_params("Concat", "synthetic", 7), 7)


def test_restore_puts_back_only_the_knob_lines():
    original = "dataset: synthetic   # comment\nfusion: viral\nseed: 999\ntrain:\n  seed: 5\n"
    # dvc changed fusion and seed; meanwhile someone edited the train section.
    current = "dataset: synthetic   # comment\nfusion: concat\nseed: 1001\ntrain:\n  seed: 6\n"
    restored = table2.restore_knobs(current, original, ["dataset", "fusion", "seed", "absent"])
    assert restored == "dataset: synthetic   # comment\nfusion: viral\nseed: 999\ntrain:\n  seed: 6\n"
