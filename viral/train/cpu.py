"""CPU-side tuning of the training process."""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

import torch

log = logging.getLogger(__name__)

# glibc mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MAX_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling on 64-bit systems


def keep_freed_memory_for_reuse() -> bool:
    """Make glibc keep freed blocks of up to 32 MB in the heap instead of unmapping them.

    A LightGCN step allocates and frees several node-embedding-sized tensors (7 MB on Baby) per
    layer; by default each comes from a fresh mmap and page-faults on first touch, which costs about
    as much as the sparse product itself. Returns False where the C library is not glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    ok = all(mallopt(param, value) == 1 for param, value in (
        (M_MMAP_THRESHOLD, MAX_MMAP_THRESHOLD), (M_TRIM_THRESHOLD, 8 * MAX_MMAP_THRESHOLD),
        (M_TOP_PAD, 2 * MAX_MMAP_THRESHOLD)))
    log.debug("glibc malloc thresholds raised: %s", ok)
    return ok


def free_cores() -> int:
    """Cores this process may use minus the current load (1-minute average), at least 1."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        load = 0.0
    return max(1, int(available - load + 0.5))


def set_threads(requested: int) -> int:
    """Give torch `requested` CPU threads (0 = `free_cores()`); returns the number set.

    On a shared machine torch's default (one thread per core) oversubscribes and its threads spin
    waiting for each other: an epoch can take ten times longer than with the free cores only.
    """
    threads = requested or free_cores()
    torch.set_num_threads(threads)
    log.info("torch CPU threads: %d%s", threads, "" if requested else " (free cores at start)")
    return threads
