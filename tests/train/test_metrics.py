"""Metric functions against values computed by hand from the definitions (model-spec §2.3)."""
import math

import pytest
import torch

from viral.train.metrics import mean_metrics, metric_names, metric_sums


def one_user(hits, n_relevant, k):
    sums = metric_sums(torch.tensor([hits], dtype=torch.bool), torch.tensor([n_relevant]), (k,))
    return {name.split("@")[0]: float(value) for name, value in sums.items()}


def test_two_relevant_both_found():
    m = one_user([1, 0, 1, 0, 0], n_relevant=2, k=5)
    assert m["recall"] == pytest.approx(1.0)
    assert m["precision"] == pytest.approx(2 / 5)
    idcg = 1 + 1 / math.log2(3)
    assert m["ndcg"] == pytest.approx((1 + 1 / math.log2(4)) / idcg)
    assert m["map"] == pytest.approx((1 / 1 + 2 / 3) / 2)


def test_one_relevant_item():
    m = one_user([0, 0, 1, 0, 0], n_relevant=1, k=5)
    assert m == pytest.approx({"recall": 1.0, "ndcg": 0.5, "precision": 0.2, "map": 1 / 3})


def test_more_relevant_than_k_recall_divides_by_all_of_them():
    m = one_user([0, 1, 0, 0, 1], n_relevant=10, k=5)
    assert m["recall"] == pytest.approx(2 / 10)  # not min(P, K) = 5
    ideal = sum(1 / math.log2(r + 1) for r in range(1, 6))  # IDCG over min(P, K) = 5 ranks
    assert m["ndcg"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(6)) / ideal)
    assert m["precision"] == pytest.approx(2 / 5)
    assert m["map"] == pytest.approx((1 / 2 + 2 / 5) / 5)


def test_k_larger_than_the_catalog():
    # Only 3 items can be ranked; K = 5 still divides precision by 5.
    m = one_user([0, 1, 0], n_relevant=1, k=5)
    assert m == pytest.approx({"recall": 1.0, "ndcg": 1 / math.log2(3), "precision": 0.2, "map": 0.5})


def test_no_hit_gives_zero_and_truncation_at_k():
    m = one_user([0, 0, 1, 1], n_relevant=2, k=2)
    assert m == pytest.approx({"recall": 0.0, "ndcg": 0.0, "precision": 0.0, "map": 0.0})


def test_batch_sums_average_over_users_and_round_to_four_decimals():
    hits = torch.tensor([[1, 0, 0], [0, 0, 1], [0, 0, 0]], dtype=torch.bool)
    sums = metric_sums(hits, torch.tensor([1, 3, 2]), (3,))
    means = mean_metrics(sums, 3)
    assert means["recall@3"] == round((1 + 1 / 3 + 0) / 3, 4)
    assert means["precision@3"] == round((1 / 3 + 1 / 3) / 3, 4)
    assert list(means) == metric_names((3,))
