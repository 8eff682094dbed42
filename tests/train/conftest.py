"""A small random dataset with MMRec's per-user split, shared by the engine tests."""
import numpy as np
import pandas as pd
import pytest

from viral.graphs.user_item import normalized_adjacency
from viral.train.data import TrainData, from_interactions


def random_data(n_users: int = 60, n_items: int = 40, per_user: int = 8, seed: int = 0) -> TrainData:
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False)
        split = np.zeros(per_user, dtype=np.int8)
        split[-2:] = (1, 2)
        rows.append(pd.DataFrame({"userID": user, "itemID": items, "split": split}))
    data = from_interactions(pd.concat(rows, ignore_index=True), n_users, n_items, "tiny")
    data.inputs.graphs["ui"] = normalized_adjacency(data.inputs.train_pairs, n_users, n_items)
    return data


@pytest.fixture
def tiny_data() -> TrainData:
    return random_data()
