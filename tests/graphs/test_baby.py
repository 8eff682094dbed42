"""Real data (Amazon Baby, MMRec split): graphs from its train split against an independent check."""
from pathlib import Path

import numpy as np
import pytest

from viral.graphs.user_item import normalized_adjacency
from viral.graphs.user_user import user_user_graph

BABY = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "baby"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not BABY.is_dir(), reason="real data ../shared/data/baby is not present"),
]


@pytest.fixture(scope="module")
def baby():
    from viral.data.mmrec import read_folder

    inter = read_folder(BABY).inter
    pairs = inter[["userID", "itemID"]].to_numpy()
    split = inter["split"].to_numpy()
    return pairs[split == 0], pairs[split != 0], int(pairs[:, 0].max()) + 1, int(pairs[:, 1].max()) + 1


def test_user_user_matches_set_intersections_on_sampled_users(baby):
    train, _, n_users, n_items = baby
    graph = user_user_graph(train, n_users, n_items, k=10, weight="row_norm")
    items_of = [set() for _ in range(n_users)]
    for user, item in train.tolist():
        items_of[user].add(item)
    for user in np.random.default_rng(0).choice(n_users, 60, replace=False).tolist():
        counts = [(len(items_of[user] & items_of[other]), other) for other in range(n_users) if other != user]
        top = sorted(((-c, other) for c, other in counts if c > 0))[:10]
        expected = {other: -c for c, other in top}
        row = graph[user]
        assert sorted(row.indices.tolist()) == sorted(expected)
        total = sum(expected.values())
        for other, weight in zip(row.indices.tolist(), row.data.tolist()):
            assert weight == pytest.approx(expected[other] / total, abs=1e-6)


def test_user_item_graph_holds_train_edges_only(baby):
    train, held_out, n_users, n_items = baby
    ui = normalized_adjacency(train, n_users, n_items)
    assert ui.nnz == 2 * len({tuple(p) for p in train.tolist()})
    train_set = {tuple(p) for p in train.tolist()}
    leaked = [(u, i) for u, i in held_out.tolist() if (u, i) not in train_set and ui[u, n_users + i] != 0]
    assert leaked == []
