"""benchmarks/gpu_check.py cannot run its CUDA figures here: check its no-CUDA exit and run its stages on
CPU with small graphs, so that the script a GPU session runs in one go is exercised end to end."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)

CPU = torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_without_cuda_it_says_why_and_exits_cleanly(capsys):
    assert gpu_check.main([]) == 0
    captured = capsys.readouterr()
    assert "no CUDA device" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["cuda"] is False and summary["benchmark"] == "gpu_check"


def test_its_stages_run_on_small_graphs(monkeypatch):
    small = gpu_check.synthetic_data(n_users=80, n_items=50, n_interactions=900, seed=0)
    epoch = gpu_check.time_epoch("viral_faithful", small, "bf16", CPU)
    assert epoch["batches"] == 1 and epoch["seconds_per_epoch"] > 0 and epoch["peak_cuda_mb"] is None
    monkeypatch.setattr(gpu_check, "clothing_data", lambda seed: small)
    clothing = gpu_check.clothing_sized(CPU)
    assert set(clothing) >= {"fp32", "bf16"} and clothing["bf16"]["seconds_per_batch"] > 0
    monkeypatch.setattr(gpu_check, "SMALL", {"n_users": 60, "n_items": 40, "n_interactions": 500})
    monkeypatch.setattr(gpu_check, "AGREEMENT_EPOCHS", 2)
    agreement = gpu_check.cpu_agreement(CPU, ("viral_scalable",))  # CPU against itself: runs the comparison
    assert agreement["ok"] and agreement["viral_scalable"]["loss_rel"] == 0.0
