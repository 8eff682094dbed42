"""benchmarks/viral_speed.py's FLOP accounting: dense products counted by hand, sparse ones not at all,
CPU flash attention counted as the fused kernels are."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
spec = importlib.util.spec_from_file_location("viral_speed", BENCHMARKS / "viral_speed.py")
viral_speed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(viral_speed)

from viral.models.base import sparse_csr, spmm  # noqa: E402


def _count(fn) -> int:
    with FlopCounterMode(display=False, custom_mapping=viral_speed._flop_formulas()) as counter:
        fn()
    return counter.get_total_flops()


def test_dense_products_are_counted_and_sparse_ones_are_not():
    a, b, bias = torch.randn(5, 7), torch.randn(7, 3), torch.randn(3)
    adjacency = sparse_csr(sp.random(20, 20, density=0.3, random_state=0, format="csr", dtype=np.float32))
    x = torch.randn(20, 4)
    assert _count(lambda: a @ b) == 2 * 5 * 7 * 3
    assert _count(lambda: torch.addmm(bias, a, b)) == 2 * 5 * 7 * 3
    assert _count(lambda: spmm(adjacency, x)) == 0
    assert _count(lambda: adjacency @ x) == 0


def test_cpu_flash_attention_is_counted_forward_and_backward():
    q, k, v = (torch.randn(2, 1, 30, 8, requires_grad=True) for _ in range(3))
    forward = 2 * (2 * 30 * 30 * 8)  # scores and the weighted sum, per batch row
    assert _count(lambda: F.scaled_dot_product_attention(q, k, v)) == 2 * forward
    both = _count(lambda: F.scaled_dot_product_attention(q, k, v).sum().backward())
    assert both > 3 * 2 * forward  # the backward recomputes scores and forms four more products


def test_a_viral_batch_counts_its_dense_flops():
    small = viral_speed.synthetic_data(n_users=60, n_items=40, n_interactions=600, seed=0)
    flops = {}
    for key, (name, config) in viral_speed.configs(8).items():
        trainer = viral_speed.Trainer(name, config, small, torch.device("cpu"), 256, 1, "fp32", 0)
        flops[key] = viral_speed.dense_gflop_per_batch(trainer)
    assert flops["lightgcn"] == 0  # LightGCN only propagates (sparse) and scores (elementwise)
    assert flops["viral_faithful"] > flops["viral_scalable"] > 0  # faithful adds the all-item attention
