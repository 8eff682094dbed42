import math

import pytest
import torch

from viral.models.losses import info_nce


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


def test_info_nce_drops_duplicate_rows_from_the_negatives():
    torch.manual_seed(0)
    a, b = torch.randn(3, 4), torch.randn(3, 4)
    # Rows 0 and 2 are the same item: the loss equals the per-row losses with that pair removed.
    ids = torch.tensor([7, 1, 7])
    logits = torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T / 0.2
    keep = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=torch.bool)

    def direction(m, k):
        return torch.stack([-(m[i, i] - torch.logsumexp(m[i][k[i]], 0)) for i in range(3)]).mean()

    expected = (direction(logits, keep) + direction(logits.T, keep.T)) / 2
    assert info_nce(a, b, 0.2, ids).item() == pytest.approx(expected.item(), abs=1e-6)
    assert info_nce(a, b, 0.2, torch.tensor([0, 1, 2])).item() == pytest.approx(info_nce(a, b, 0.2).item())
