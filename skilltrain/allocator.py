"""glibc malloc tuning for CPU training (measured: bench/cpu_allocator.py).

With glibc's default, dynamic thresholds, a training step that frees and re-allocates the same multi-MB
activation buffers returns them to the kernel and faults them back in, hundreds of page faults a step: on the
compositional recipe that doubles the step time. Fixing the mmap threshold at its maximum (32 MiB) and keeping up
to 256 MiB of freed memory in the heap removes the faults. It changes no result, only speed, and costs at most
256 MiB of resident memory that the process would have reused anyway.

Set SKILLTRAIN_MALLOC_TUNING=0 to leave malloc alone (also a no-op off glibc, e.g. macOS, or under jemalloc).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_done = False


def tune_cpu_allocator() -> bool:
    """Apply the tuning once per process; True if glibc accepted it."""
    global _done
    if _done or os.environ.get("SKILLTRAIN_MALLOC_TUNING", "1") == "0":
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _done = bool(mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024)) and bool(mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024))
    return _done
