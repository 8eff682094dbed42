"""Full-ranking evaluation: hand-computed cases (masking, ties), a brute-force per-user reference, batch
size independence, eval mode and no_grad."""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from viral.models.base import ModelInputs, Recommender
from viral.train.data import from_interactions
from viral.train.evaluate import Evaluator, evaluate


class FixedScores(Recommender):
    """Scores = the given matrix (user embedding = its row, item embedding = a one-hot)."""

    def __init__(self, scores: np.ndarray) -> None:
        n_users, n_items = scores.shape
        super().__init__(ModelInputs(n_users, n_items, np.zeros((0, 2), dtype=np.int64)), None)
        self.users = torch.nn.Parameter(torch.tensor(scores, dtype=torch.float32))
        self.items = torch.eye(n_items)
        self.calls = []

    def embeddings(self):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.users, self.items


def frame(rows):
    return pd.DataFrame(rows, columns=["userID", "itemID", "split"])


def two_users():
    rows = [(0, 0, 0), (0, 1, 1), (0, 2, 2), (1, 5, 0), (1, 0, 1), (1, 3, 2), (1, 4, 2)]
    return from_interactions(frame(rows), 2, 6)


def test_masks_only_train_items_and_keeps_valid_items_at_test_time():
    scores = np.array([[10, 9, 8, 7, 6, 5], [3, 0, -1, 1, 2, 100]], dtype=np.float32)
    result = evaluate(FixedScores(scores), two_users())
    assert result["valid"]["recall@5"] == 1.0 and result["valid"]["ndcg@5"] == 1.0
    test = result["test"]
    # user 0: valid item 1 stays a candidate at rank 1, so test item 2 is at rank 2.
    # user 1: train item 5 (score 100) is masked; test items 4 and 3 land at ranks 2 and 3.
    ndcg_user0 = 1 / math.log2(3)
    ndcg_user1 = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert test["recall@5"] == 1.0
    assert test["ndcg@5"] == round((ndcg_user0 + ndcg_user1) / 2, 4)
    assert test["precision@5"] == round((1 / 5 + 2 / 5) / 2, 4)
    assert test["map@5"] == round((1 / 2 + (1 / 2 + 2 / 3) / 2) / 2, 4)


def test_ties_are_resolved_without_changing_the_metric():
    # user 0: non-relevant items 3 and 4 tie (ranks 3-4). user 1: non-relevant items 1 and 2 tie at
    # ranks 1-2 and test items 3 and 4 tie at ranks 3-4: every tie order gives the same metrics.
    scores = np.array([[0, 7, 9, 5, 5, 0], [0, 9, 9, 2, 2, 100]], dtype=np.float32)
    result = evaluate(FixedScores(scores), two_users())
    user1 = (1 / math.log2(4) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert result["test"]["ndcg@5"] == round((1.0 + user1) / 2, 4)
    assert result["test"]["map@5"] == round((1.0 + (1 / 3 + 2 / 4) / 2) / 2, 4)
    assert result["valid"]["ndcg@5"] == round((1 / math.log2(3) + 1 / math.log2(6)) / 2, 4)


def naive_user_metrics(scores, data, split, k):
    """Per-user Python reference: sort all items, drop train items, read the definitions literally.
    {user: {metric@k: value}} for every user with train and `split` items."""
    train = data.inputs.train_pairs
    held = data.held_out[split]
    found = {}
    for user in np.unique(held[:, 0]):
        seen = set(train[train[:, 0] == user, 1])
        if not seen:
            continue
        relevant = set(held[held[:, 0] == user, 1])
        ranking = [i for i in np.argsort(-scores[user], kind="stable") if i not in seen][:k]
        hits = [int(i in relevant) for i in ranking]
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(relevant), k)))
        precisions = [sum(hits[: r + 1]) / (r + 1) for r in range(len(hits)) if hits[r]]
        found[int(user)] = {f"recall@{k}": sum(hits) / len(relevant), f"ndcg@{k}": dcg / idcg,
                            f"precision@{k}": sum(hits) / k, f"map@{k}": sum(precisions) / min(len(relevant), k)}
    return found


def naive_metrics(scores, data, split, k):
    """The mean over users of `naive_user_metrics`."""
    per_user = list(naive_user_metrics(scores, data, split, k).values())
    return {name: float(np.mean([user[name] for user in per_user])) for name in per_user[0]}


@pytest.mark.parametrize("k", [5, 10, 20])
def test_matches_a_brute_force_reference(tiny_data, k):
    scores = np.random.default_rng(3).standard_normal((60, 40)).astype(np.float32)
    result = evaluate(FixedScores(scores), tiny_data)
    for split in ("valid", "test"):
        reference = naive_metrics(scores, tiny_data, split, k)
        for name, value in reference.items():
            assert result[split][name] == pytest.approx(value, abs=6e-5), (split, name)


def test_result_does_not_depend_on_the_eval_batch_size(tiny_data):
    scores = np.random.default_rng(4).standard_normal((60, 40)).astype(np.float32)
    model = FixedScores(scores)
    results = [Evaluator(tiny_data, torch.device("cpu"), size).evaluate(model) for size in (1, 7, 4096)]
    assert results[0] == results[1] == results[2]


def test_embeddings_are_recomputed_in_eval_mode_without_grad(tiny_data):
    model = FixedScores(np.zeros((60, 40), dtype=np.float32))
    model.train()
    evaluator = Evaluator(tiny_data, torch.device("cpu"))
    evaluator.evaluate(model)
    evaluator.evaluate(model)
    assert model.calls == [(False, False), (False, False)]
    assert model.training  # the caller's mode is restored


def test_every_user_with_train_and_held_out_items_is_evaluated(tiny_data):
    evaluator = Evaluator(tiny_data, torch.device("cpu"))
    assert len(evaluator.split_users["valid"]) == len(evaluator.split_users["test"]) == 60


@pytest.mark.slow
@pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "../shared/data/baby").is_dir(),
                    reason="../shared/data/baby is not available in this checkout")
def test_real_baby_evaluation_matches_the_reference_on_a_user_sample():
    from viral.train.data import load_mmrec_inputs

    data = load_mmrec_inputs(Path(__file__).resolve().parents[2] / "../shared/data/baby")
    sample = np.arange(0, data.inputs.n_users, 97)  # 201 users spread over the id range
    keep = lambda pairs: pairs[np.isin(pairs[:, 0], sample)]  # noqa: E731
    data.inputs.train_pairs = keep(data.inputs.train_pairs)
    data.held_out = {split: keep(pairs) for split, pairs in data.held_out.items()}
    scores = np.random.default_rng(5).standard_normal((data.inputs.n_users, data.inputs.n_items)).astype(np.float32)
    result = evaluate(FixedScores(scores), data, batch_size=64)
    for split in ("valid", "test"):
        for name, value in naive_metrics(scores, data, split, 20).items():
            assert result[split][name] == pytest.approx(value, abs=6e-5), (split, name)
