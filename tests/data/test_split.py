"""MMRec's per-user split rule, checked user by user, and its seeding; the chronological splits."""
import numpy as np
import pytest

from viral.data.split import last_out_split, per_user_split, split_sizes, timestamp_split


def _rule(n: int) -> tuple[int, int, int]:
    # Written the way MMRec's notebook states it, with the float product it uses.
    if n < 10:
        return n - 2, 1, 1
    vt = int(0.2 * n)
    return n - vt, vt // 2, vt - vt // 2


def test_split_sizes_match_the_rule_for_every_n():
    n = np.arange(3, 5000)
    train, valid, test = split_sizes(n)
    assert [(int(a), int(b), int(c)) for a, b, c in zip(train, valid, test)] == [_rule(int(x)) for x in n]


def test_every_user_obeys_the_rule():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(500), rng.integers(3, 60, 500))
    users = rng.permutation(users)
    labels = per_user_split(users, seed=7)
    for user in range(500):
        mine = labels[users == user]
        counts = tuple(int((mine == s).sum()) for s in (0, 1, 2))
        assert counts == _rule(len(mine)), user


def test_seeded_reproducible_and_seed_sensitive():
    users = np.repeat(np.arange(200), 12)
    a = per_user_split(users, seed=1)
    assert np.array_equal(a, per_user_split(users, seed=1))
    assert not np.array_equal(a, per_user_split(users, seed=2))


def test_order_within_a_user_is_random_not_positional():
    users = np.repeat(np.arange(2000), 5)
    labels = per_user_split(users, seed=3).reshape(2000, 5)
    # Every position of a user's rows is sometimes test: the split does not just take the last rows.
    assert ((labels == 2).mean(axis=0) > 0.1).all()


def test_too_few_interactions_is_an_error():
    with pytest.raises(ValueError, match="at least 3"):
        per_user_split(np.array([0, 0, 1, 1, 1]), seed=0)


def test_last_out_against_a_loop():
    rng = np.random.default_rng(3)
    users = rng.integers(0, 30, 400)
    times = rng.integers(0, 50, 400)  # many ties
    labels = last_out_split(users, times)
    for user in np.unique(users):
        rows = sorted(np.flatnonzero(users == user), key=lambda row: (times[row], row))
        expected = [0] * max(len(rows) - 2, 0) + [1, 2][-min(len(rows), 2):]
        assert labels[rows].tolist() == expected, user


def test_timestamp_split():
    assert timestamp_split(np.array([1, 5, 9, 10, 20]), 5, 10).tolist() == [0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="must not be after"):
        timestamp_split(np.array([1]), 10, 5)
