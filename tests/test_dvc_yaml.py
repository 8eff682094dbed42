"""dvc.yaml's declared metrics and plots can be compared across revisions (`dvc metrics diff`,
`dvc exp show`): an uncached one must be tracked by git, never under a git-ignored path."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from viral.run_report import run_report_path

ROOT = Path(__file__).resolve().parents[1]


def _expand(text: str, values: dict) -> str:
    return re.sub(r"\$\{([^}]+)\}", lambda match: str(values[match.group(1)]), text)


def declared(kind: str) -> dict[str, dict]:
    """{stage name: {path: options}} of every `kind` (metrics, plots) entry, templates filled from params."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    found: dict[str, dict] = {}
    for name, stage in stages.items():
        if "foreach" in stage:
            items = params["caption"]["prompts"] if stage["foreach"] == "${caption.prompts}" else stage["foreach"]
            expanded = {f"{name}@{item}": (stage["do"], item) for item in items}
        else:
            expanded = {name: (stage, None)}
        for stage_name, (body, item) in expanded.items():
            for entry in body.get(kind, []):
                path, options = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
                found.setdefault(stage_name, {})[_expand(path, {"dataset": params["dataset"], "item": item})] = \
                    options or {}
    return found


def test_every_uncached_metric_and_plot_is_tracked_by_git():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    uncached = sorted(path for kind in ("metrics", "plots") for paths in declared(kind).values()
                      for path, options in paths.items() if options.get("cache") is False)
    assert uncached
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *uncached], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    assert ignored == [], "git ignores these metrics: dvc metrics diff cannot load them at a revision"


def test_each_stage_run_report_is_a_declared_uncached_metric():
    metrics = declared("metrics")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    expected = {"prepare": "prepare", "images": "images", "encode": "encode",
                **{f"caption@{prompt}": f"caption/{prompt}" for prompt in params["caption"]["prompts"]}}
    for stage, report in expected.items():
        path = run_report_path(report).as_posix()
        assert metrics.get(stage, {}).get(path) == {"cache": False}, f"{stage}: declare {path} (cache: false)"
