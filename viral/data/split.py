"""MMRec's per-user random split into train / valid / test, seeded so that it is reproducible.

Per user with n interactions (in a random order): n < 10 gives n-2 train, 1 valid, 1 test;
otherwise vt = int(0.2 n), valid = vt // 2, test = vt - valid, train = n - vt.
"""
from __future__ import annotations

import numpy as np

TRAIN, VALID, TEST = 0, 1, 2
SPLIT_RULE = "mmrec_per_user: n<10 -> n-2/1/1; else vt=int(0.2n), valid=vt//2, test=vt-valid"


def split_sizes(n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, valid, test) counts per user for interaction counts `n` (the MMRec rule)."""
    n = np.asarray(n, dtype=np.int64)
    small = n < 10
    vt = np.where(small, 2, (n * 2) // 10)  # int(0.2 n) without float rounding surprises
    valid = np.where(small, 1, vt // 2)
    test = vt - valid
    return n - vt, valid, test


def per_user_split(users: np.ndarray, seed: int) -> np.ndarray:
    """The split label (int8: 0 train, 1 valid, 2 test) of every interaction, users given as codes.

    Each user's interactions are put in a random order drawn from `seed`; the first `train` of them
    are train, the next `valid` are valid, the rest test. Every user needs at least 3 interactions.
    """
    users = np.asarray(users, dtype=np.int64)
    labels = np.empty(len(users), dtype=np.int8)
    if not len(users):
        return labels
    counts = np.bincount(users)
    present = counts[counts > 0]
    if present.min() < 3:
        raise ValueError(f"every user needs at least 3 interactions to split, found one with {present.min()}")
    order = np.lexsort((np.random.default_rng(seed).random(len(users)), users))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sorted_users = users[order]
    rank = np.arange(len(users)) - starts[sorted_users]
    train, valid, _ = split_sizes(counts)
    train_n, valid_n = train[sorted_users], valid[sorted_users]
    labels[order] = np.where(rank < train_n, TRAIN, np.where(rank < train_n + valid_n, VALID, TEST))
    return labels


LAST_OUT_RULE = "last_out: per user by time, the latest interaction test, the one before valid, the rest train"
TIMESTAMP_RULE = "timestamp: train before valid_from, valid before test_from, test from test_from on"


def last_out_split(users: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Chronological leave-last-out labels: each user's latest interaction is test, the one before it
    valid, all earlier ones train (ties by row order). A user with one interaction has only test,
    with two valid and test, as in the Amazon 2023 benchmark files."""
    users = np.asarray(users, dtype=np.int64)
    labels = np.full(len(users), TRAIN, dtype=np.int8)
    if not len(users):
        return labels
    order = np.lexsort((np.arange(len(users)), np.asarray(timestamps, dtype=np.int64), users))
    sorted_users = users[order]
    last = np.r_[sorted_users[1:] != sorted_users[:-1], True]
    before_last = np.r_[last[1:] & (sorted_users[1:] == sorted_users[:-1]), False]
    labels[order[last]] = TEST
    labels[order[before_last]] = VALID
    return labels


def timestamp_split(timestamps: np.ndarray, valid_from: int, test_from: int) -> np.ndarray:
    """Global time cut: test from `test_from` on, valid from `valid_from` on, train before."""
    if valid_from > test_from:
        raise ValueError(f"valid_from ({valid_from}) must not be after test_from ({test_from})")
    timestamps = np.asarray(timestamps, dtype=np.int64)
    return np.where(timestamps >= test_from, TEST, np.where(timestamps >= valid_from, VALID, TRAIN)).astype(np.int8)
