import math

import pytest
import torch

from viral.models.losses import info_nce, one_way_info_nce


def test_info_nce_matches_hand_computed_value():
    # a = I, b = [(1,0), (1,1)/sqrt2], tau = 0.5 -> logits [[2, sqrt2], [0, sqrt2]].
    # rows: log(1+e^(sqrt2-2)), log(1+e^-sqrt2); columns: log(1+e^-2), log 2.
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[3.0, 0.0], [1.0, 1.0]])  # not normalised: the loss must normalise
    s = math.sqrt(2)
    rows = (math.log(1 + math.exp(s - 2)) + math.log(1 + math.exp(-s))) / 2
    cols = (math.log(1 + math.exp(-2)) + math.log(2)) / 2
    assert info_nce(a, b, 0.5).item() == pytest.approx((rows + cols) / 2, abs=1e-6)
    assert (rows + cols) / 2 == pytest.approx(0.370061, abs=1e-6)


def test_info_nce_with_duplicate_ids_equals_the_loss_over_distinct_rows():
    torch.manual_seed(0)
    distinct_a, distinct_b = torch.randn(4, 5), torch.randn(4, 5)
    # A batch drawing item 2 three times and item 0 twice, in shuffled order.
    ids = torch.tensor([2, 0, 2, 3, 1, 0, 2])
    batch = info_nce(distinct_a[ids], distinct_b[ids], 0.2, ids)
    assert batch.item() == pytest.approx(info_nce(distinct_a, distinct_b, 0.2).item(), abs=1e-6)
    distinct_ids = torch.arange(4)
    assert info_nce(distinct_a, distinct_b, 0.2, distinct_ids).item() == pytest.approx(
        info_nce(distinct_a, distinct_b, 0.2).item(), abs=1e-6
    )


def test_one_way_info_nce_matches_hand_computed_value():
    # Same pairs as above; one direction only (a's rows are the anchors): the row terms.
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    s = math.sqrt(2)
    rows = (math.log(1 + math.exp(s - 2)) + math.log(1 + math.exp(-s))) / 2
    assert one_way_info_nce(a, b, 0.5).item() == pytest.approx(rows, abs=1e-6)
    cols = (math.log(1 + math.exp(-2)) + math.log(2)) / 2
    assert one_way_info_nce(b, a, 0.5).item() == pytest.approx(cols, abs=1e-6)


@pytest.mark.parametrize("chunk_rows", [1, 3, 7, 10, 64])
def test_one_way_info_nce_in_blocks_has_the_dense_value_and_gradients(chunk_rows):
    torch.manual_seed(1)
    a, b = torch.randn(10, 4, dtype=torch.float64), torch.randn(10, 4, dtype=torch.float64)
    # The definition, written out: -log of the positive's share of each anchor's exponentiated similarities.
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    similarities = torch.exp(an @ bn.T / 0.3)
    expected = -torch.log(similarities.diagonal() / similarities.sum(1)).mean()
    grads = []
    for chunk in (0, chunk_rows):
        a_, b_ = a.clone().requires_grad_(), b.clone().requires_grad_()
        value = one_way_info_nce(a_, b_, 0.3, chunk)
        assert value.item() == pytest.approx(expected.item(), rel=1e-12)
        value.backward()
        grads.append((a_.grad, b_.grad))
    for dense, blocked in zip(*grads):
        torch.testing.assert_close(blocked, dense, rtol=1e-12, atol=1e-12)
