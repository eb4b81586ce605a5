"""Process memory settings for the serving and SMTP worker processes (glibc only).

glibc serves an allocation of 128 KiB or more with its own ``mmap`` and gives it back on
free, but after such a block is freed it raises that threshold (up to 32 MiB) so later
ones come from the heap, which is rarely returned. After a few 20 MiB messages (the
received bytes, the stamped copy, the sealed copy) a process kept ~100 MiB more resident
for good (issue 8: measured 199 MiB instead of 93 for an SMTP worker). A fixed threshold
keeps large buffers mapped and returned: a few page faults per large message instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

M_MMAP_THRESHOLD = -3  # glibc malloc.h
MMAP_THRESHOLD_BYTES = 1024 * 1024

log = logging.getLogger("gateway.memory")


def return_large_blocks() -> bool:
    """Fix glibc's mmap threshold at 1 MiB; True when applied (False elsewhere, harmlessly)."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    if not done:
        log.warning("mallopt(M_MMAP_THRESHOLD) refused; large buffers may stay resident")
    return done
