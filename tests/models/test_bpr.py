"""BPR against MMRec's loss written out by hand: BPR = mean -log sigmoid(pos - neg), reg = reg_weight x
(sum of the unsquared Frobenius norms of the batch's user, pos and neg embeddings) / batch size."""
import math

import numpy as np
import pytest
import torch

from viral.models.base import ModelInputs, emb_loss
from viral.models.bpr import BPR, Config


def test_loss_matches_the_hand_computed_formula():
    inputs = ModelInputs(n_users=2, n_items=3, train_pairs=np.array([[0, 0], [1, 1]]))
    model = BPR(inputs, Config(embedding_dim=2, reg_weight=0.5))
    with torch.no_grad():
        model.user_embedding.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        model.item_embedding.copy_(torch.tensor([[1.0, 1.0], [0.0, 1.0], [3.0, 0.0]]))
    losses = model.loss(torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([2, 0]))
    # user 0: pos 1, neg 3; user 1: pos 2, neg 2.
    bpr = (-math.log(1 / (1 + math.exp(-(1 - 3)))) - math.log(0.5)) / 2
    norms = math.sqrt(1 + 4) + math.sqrt(2 + 1) + math.sqrt(9 + 2)
    assert losses["bpr"].item() == pytest.approx(bpr, rel=1e-6)
    assert losses["reg"].item() == pytest.approx(0.5 * norms / 2, rel=1e-6)
    assert losses["loss"].item() == pytest.approx(bpr + 0.5 * norms / 2, rel=1e-6)


def test_emb_loss_is_not_squared_and_divides_by_the_batch():
    a, b = torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    assert emb_loss(a, b).item() == pytest.approx((5.0 + 1.0) / 2)


def test_scores_are_dot_products_of_the_embedding_tables():
    inputs = ModelInputs(n_users=4, n_items=5, train_pairs=np.zeros((0, 2), dtype=np.int64))
    model = BPR(inputs, Config())
    users, items = model.embeddings()
    assert users.shape == (4, 64) and items.shape == (5, 64)
