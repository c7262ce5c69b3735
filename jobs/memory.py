"""The process's memory allocator, set for a worker that writes from several threads.

glibc gives each thread that allocates its own malloc arena (up to eight per core), and memory
freed in one arena is not reused by another: the threads of a parallel apply (``[creatio]
max_concurrency``) grew the peak of a 50,000-user import by tens of MB that the Python objects
never needed. Two arenas, and large blocks from ``mmap`` (returned to the system when freed),
keep the peak to what is alive. ``MALLOC_ARENA_MAX`` / ``MALLOC_MMAP_THRESHOLD_`` in the
environment win over this; elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt parameters (malloc.h)
ARENAS, MMAP_THRESHOLD = 2, 128 * 1024


def tune_allocator() -> bool:
    """Set glibc's arena count and mmap threshold unless the environment sets them; whether it did."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    done = False
    if "MALLOC_ARENA_MAX" not in os.environ:
        done = bool(mallopt(M_ARENA_MAX, ARENAS)) or done
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) or done
    return done
