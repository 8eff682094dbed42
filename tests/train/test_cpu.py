import ctypes
import ctypes.util
import os

import pytest
import torch

from viral.train.cpu import free_cores, keep_freed_memory_for_reuse, set_threads


def test_malloc_tuning_applies_on_glibc():
    # The engine's Linux/glibc target must accept the thresholds; elsewhere it reports False, never raises.
    is_glibc = hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "gnu_get_libc_version")
    assert keep_freed_memory_for_reuse() is is_glibc


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_an_explicit_thread_count_is_set(restore_threads):
    assert set_threads(1) == 1 and torch.get_num_threads() == 1


def test_zero_takes_the_cores_left_free_by_the_current_load(restore_threads, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(os, "getloadavg", lambda: (1.4, 0.0, 0.0))
    assert set_threads(0) == 3 and torch.get_num_threads() == 3
    monkeypatch.setattr(os, "getloadavg", lambda: (9.0, 0.0, 0.0))  # oversubscribed: still one thread
    assert free_cores() == 1
