import ctypes
import ctypes.util

from viral.train.cpu import keep_freed_memory_for_reuse


def test_malloc_tuning_applies_on_glibc():
    # The engine's Linux/glibc target must accept the thresholds; elsewhere it reports False, never raises.
    is_glibc = hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "gnu_get_libc_version")
    assert keep_freed_memory_for_reuse() is is_glibc
