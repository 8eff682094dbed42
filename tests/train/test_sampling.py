"""MMRec negative sampling: never a train item of the user, only items seen in train, seeded."""
import numpy as np
import pytest

from viral.train.sampling import NegativeSampler


def test_negatives_avoid_history_and_unseen_items():
    rng = np.random.default_rng(0)
    n_users, n_items = 50, 30
    pairs = np.array([(u, i) for u in range(n_users) for i in rng.choice(25, size=10, replace=False)])
    sampler = NegativeSampler(pairs, n_items)
    users = np.repeat(np.arange(n_users), 200)
    negatives = sampler.sample(users, np.random.default_rng(1))
    history = {(u, i) for u, i in pairs}
    assert not any((u, n) in history for u, n in zip(users, negatives))
    assert set(negatives) <= set(pairs[:, 1])  # items 25..29 never occur in train: never drawn
    # Uniform over the allowed items: each user's 15 allowed items get about 200/15 draws each.
    counts = np.bincount(negatives[users == 0], minlength=n_items)
    allowed = sorted(set(range(25)) - {i for u, i in pairs if u == 0})
    assert counts[allowed].min() > 3 and counts.sum() == 200


def test_sampling_is_repeatable_for_a_seed():
    pairs = np.array([[0, 0], [0, 1], [1, 2], [1, 3], [2, 0], [2, 4]])
    sampler = NegativeSampler(pairs, 5)
    users = np.array([0, 1, 2] * 50)
    first = sampler.sample(users, np.random.default_rng(7))
    assert np.array_equal(first, sampler.sample(users, np.random.default_rng(7)))


def test_user_with_every_train_item_is_an_error():
    pairs = np.array([[0, 0], [0, 1], [1, 0]])
    with pytest.raises(ValueError, match="user 0 has every train item"):
        NegativeSampler(pairs, 2)
