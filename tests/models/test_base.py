"""Shared model helpers."""
import torch

from viral.models.base import rows


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
