"""Per-user results and modality contribution: each user's metrics against the brute-force reference and
against the averaged evaluation, and the contribution of a tiny model whose answer is known by hand."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from viral.models.base import ModelInputs, Recommender
from viral.train.data import from_interactions
from viral.train.evaluate import Evaluator, UserMetrics, modality_contribution
from viral.train.outputs import per_user_table, weight_summary

from .test_evaluate import naive_user_metrics


class Scores(Recommender):
    """Fixed user and item embeddings (scores = their dot products)."""

    def __init__(self, users: np.ndarray, items: np.ndarray) -> None:
        super().__init__(ModelInputs(len(users), len(items), np.zeros((0, 2), dtype=np.int64)), None)
        self.register_buffer("users", torch.tensor(users, dtype=torch.float32))
        self.register_buffer("items", torch.tensor(items, dtype=torch.float32))

    def embeddings(self):
        return self.users, self.items


def random_case(seed: int = 0, n_users: int = 50, n_items: int = 30):
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        per_user = rng.integers(3, 9)
        items = rng.choice(n_items, size=per_user, replace=False)
        split = np.zeros(per_user, dtype=np.int8)
        split[-1] = 2
        if per_user > 4:
            split[-2] = 1  # some users have no valid item: they are evaluated on test only
        rows.append(pd.DataFrame({"userID": user, "itemID": items, "split": split}))
    data = from_interactions(pd.concat(rows, ignore_index=True), n_users, n_items)
    # Distinct scores (no ties), so the top-k is unique and the brute force agrees item for item.
    scores = rng.permuted(np.tile(np.arange(n_items, dtype=np.float64), (n_users, 1)), axis=1)
    return data, Scores(scores, np.eye(n_items)), scores


@pytest.mark.parametrize("batch_size", [7, 4096])
def test_each_users_metrics_match_a_brute_force_reference_and_average_to_the_evaluation(batch_size):
    data, model, scores = random_case()
    evaluator = Evaluator(data, torch.device("cpu"), batch_size)
    per_user = evaluator.evaluate_users(model)
    means = evaluator.evaluate(model)
    for split in ("valid", "test"):
        result = per_user[split]
        expected = naive_user_metrics(scores, data, split, 10)
        assert result.users.tolist() == sorted(expected)
        for name in ("recall@10", "ndcg@10", "precision@10", "map@10"):
            assert result.values[name] == pytest.approx([expected[u][name] for u in result.users])
        for name, values in result.values.items():
            assert round(float(values.mean()), 4) == pytest.approx(means[split][name], abs=1e-12)
            assert values.dtype == np.float64
    assert len(per_user["valid"].users) < len(per_user["test"].users)


def known_answer_case():
    """60 items; each user u < 30 trains on the items 40..59, validates on 30 + u % 10, tests on
    item u. Item embedding = [visual: one-hot of the item | text: -i/60 | id bias: i/6000]; user u =
    [one-hot of its test item | 0.1 | 1]. As is, every test item ranks first. With visual at its mean
    every item gets the same visual score and the order is by item id ascending (text outweighs the
    bias): the top 20 are items 0..19, the test items of users 0..19. With text at its mean the test
    item still wins. With both at their mean only the bias is left: ids descending with the train items
    masked, so the top 10 are the valid items 39..30 and the top 20 add items 29..20."""
    n_users, n_items = 30, 60
    rows = []
    for user in range(n_users):
        rows += [(user, item, 0) for item in range(40, 60)]
        rows += [(user, 30 + user % 10, 1), (user, user, 2)]
    data = from_interactions(pd.DataFrame(rows, columns=["userID", "itemID", "split"]), n_users, n_items)
    inputs = ModelInputs(n_users, n_items, data.inputs.train_pairs,
                         {"visual": np.eye(n_items, dtype=np.float32),
                          "text": (-np.arange(n_items) / 60).astype(np.float32)[:, None]})

    class Known(Recommender):
        def __init__(self):
            super().__init__(inputs, None)
            self.register_features(inputs, ("text", "visual"))
            self.register_buffer("bias", torch.arange(n_items, dtype=torch.float32)[:, None] / 6000)
            self.register_buffer("user", torch.cat([torch.eye(n_items)[:n_users], torch.full((n_users, 1), 0.1),
                                                    torch.ones(n_users, 1)], 1))

        def embeddings(self):
            return self.user, torch.cat([self.visual, self.text, self.bias], 1)

    return data, Known()


def test_modality_contribution_of_a_model_whose_answer_is_known():
    data, model = known_answer_case()
    result = modality_contribution(model, Evaluator(data, torch.device("cpu")))
    assert result["modalities"] == ["text", "visual"]
    assert result["full"] == {"recall@10": 1.0, "recall@20": 1.0, "ndcg@10": 1.0, "ndcg@20": 1.0}
    assert result["replaced"]["text"] == result["full"]
    visual = result["replaced"]["visual"]
    # users 0..19 find their test item at rank u + 1; users 20..29 miss it.
    assert visual["recall@20"] == round(20 / 30, 4) and visual["recall@10"] == round(10 / 30, 4)
    assert visual["ndcg@20"] == round(sum(1 / math.log2(u + 2) for u in range(20)) / 30, 4)
    assert visual["ndcg@10"] == round(sum(1 / math.log2(u + 2) for u in range(10)) / 30, 4)
    both = result["replaced"]["all"]
    # users 20..29: ranks 11..20 after the ten valid items 39..30, test item 29 first.
    assert both["recall@10"] == 0.0 and both["recall@20"] == round(10 / 30, 4)
    assert both["ndcg@20"] == round(sum(1 / math.log2(r + 1) for r in range(11, 21)) / 30, 4)
    # The model is left as it was.
    assert torch.equal(model.visual, torch.eye(60))


def test_an_id_only_model_has_no_modalities_to_replace():
    data, model, _ = random_case()
    result = modality_contribution(model, Evaluator(data, torch.device("cpu")))
    assert result["modalities"] == [] and result["replaced"] == {}
    assert result["full"]["recall@20"] == Evaluator(data, torch.device("cpu")).evaluate(model)["test"]["recall@20"]


def test_per_user_table_is_wide_with_nan_outside_a_split_and_the_users_weights():
    results = {"valid": UserMetrics(np.array([3]), {"recall@20": np.array([0.5])}),
               "test": UserMetrics(np.array([1, 3]), {"recall@20": np.array([0.25, 1.0])})}
    weights = {"text": np.array([0.0, 0.1, 0.2, 0.3]), "visual": np.array([1.0, 0.9, 0.8, 0.7])}
    table = per_user_table(results, weights, {"model": "viral", "seed": 3})
    frame = table.to_pandas()
    assert frame.columns.tolist() == ["userID", "valid_recall@20", "test_recall@20", "weight_text", "weight_visual"]
    assert frame["userID"].tolist() == [1, 3]
    assert math.isnan(frame["valid_recall@20"][0]) and frame["valid_recall@20"][1] == 0.5
    assert frame["test_recall@20"].tolist() == [0.25, 1.0]
    assert frame["weight_text"].tolist() == pytest.approx([0.1, 0.3])
    assert b'"seed": 3' in table.schema.metadata[b"viral.per_user"]


def test_weight_summary_shares_histogram_edges_across_slots():
    weights = {"text": np.array([0.0, 0.5, 1.0, 1.0]), "visual": np.array([2.0, 2.0, 2.0, 2.0])}
    summary = weight_summary(weights, bins=4)
    assert summary["users"] == 4 and summary["edges"] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert summary["slots"]["text"]["counts"] == [1, 1, 2, 0] and summary["slots"]["visual"]["counts"] == [0, 0, 0, 4]
    assert summary["slots"]["text"]["mean"] == 0.625 and summary["slots"]["text"]["median"] == 0.75
    assert summary["slots"]["visual"]["sd"] == 0.0
    assert weight_summary({}) == {}
