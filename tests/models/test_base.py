"""Shared model helpers."""
import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from viral.models.base import csr_matmul, rows, sparse_csr, spmm, unit_rows


def test_rows_gathers_and_its_gradient_is_bit_for_bit_repeatable_with_threads():
    generator = torch.Generator().manual_seed(0)
    table = torch.randn(50, 64, generator=generator)
    index = torch.randint(0, 50, (40_000,), generator=generator)  # many duplicates, large enough to thread
    weights = torch.randn(40_000, 64, generator=generator)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        grads = []
        for _ in range(3):
            leaf = table.clone().requires_grad_()
            out = rows(leaf, index)
            assert torch.equal(out, table[index])
            (out * weights).sum().backward()
            grads.append(leaf.grad)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(grads[0], grads[1]) and torch.equal(grads[0], grads[2])
    assert torch.allclose(grads[0], torch.zeros(50, 64).index_add_(0, index, weights), atol=1e-3)


def test_spmm_runs_in_fp32_for_reduced_precision_inputs_also_under_autocast():
    a = sp.random(6, 6, density=0.5, random_state=0, format="csr", dtype=np.float32)
    x = torch.randn(6, 3).bfloat16().requires_grad_()
    expected = torch.from_numpy(a.toarray()) @ x.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = spmm(sparse_csr(a), x, sparse_csr(a.T))
    assert got.dtype == torch.float32 and torch.allclose(got, expected, atol=1e-6)
    got.sum().backward()
    assert x.grad.dtype == torch.bfloat16


def test_csr_matmul_gives_the_bits_of_the_sparse_product():
    a = sp.random(40, 30, density=0.2, random_state=0, format="csr", dtype=np.float32)
    x = torch.randn(30, 7)
    assert torch.equal(csr_matmul(sparse_csr(a), x), sparse_csr(a) @ x)
    assert torch.equal(csr_matmul(sparse_csr(a), x.T.contiguous().T), sparse_csr(a) @ x)  # column-major input


def test_unit_rows_matches_normalize_and_its_gradient_including_zero_rows():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    x[2, 1] = 0.0  # a zero row: the norm is clamped to eps there
    x[4, 0] = 1e-14  # a row shorter than eps
    x.requires_grad_()
    weights = torch.randn(6, 3, 5, dtype=torch.float64)
    got, expected = unit_rows(x), F.normalize(x, dim=-1)
    assert torch.allclose(got, expected, rtol=1e-14, atol=0)
    grad_got, = torch.autograd.grad((got * weights).sum(), x)
    grad_expected, = torch.autograd.grad((expected * weights).sum(), x)
    assert torch.allclose(grad_got, grad_expected, rtol=1e-12, atol=0)
    assert torch.autograd.gradcheck(unit_rows, (torch.randn(4, 3, dtype=torch.float64, requires_grad=True),))
