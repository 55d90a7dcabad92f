"""Keeping freed memory in the process, so that a loop over batches does not fault its pages in again.

glibc's malloc hands large blocks straight to the kernel (``mmap`` above a threshold that adapts
up to 32 MiB) and gives the free top of its heap back (``M_TRIM_THRESHOLD``). A loop that
allocates the same few-MB tensors for every batch (the attention logits and pair-bias activations
of ``heplearn.methods.fastsim`` are 2-8 MB at 128 jets) then pays a page fault per 4 kB each
time: 45 000-560 000 minor faults and 0.1-0.9 CPU-s of system time per 10 000 one-step jets of
the pair-bias generator on one core, the same order as the network's own 2-2.5 s. PyTorch's
guide to CPU performance recommends a caching allocator (jemalloc, tcmalloc) preloaded for the
same reason; ``retain_freed_memory`` gets the effect without one by raising glibc's two
thresholds (``mallopt``), for this process only. The memory a process keeps is then its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

#: glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: Blocks below this come from the heap, whose free top is given back only above it.
RETAINED_BYTES = 1 << 30


@functools.cache
def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to ``RETAINED_BYTES`` (once per process); True where it
    took effect, False where the C library is not glibc (macOS, Windows, musl), which changes nothing."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, RETAINED_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, RETAINED_BYTES))
