"""Process memory settings for the serving and SMTP processes (glibc only).

glibc serves an allocation of 128 KiB or more with its own ``mmap`` and gives it back on
free, but after such a block is freed it raises that threshold (up to 32 MiB) so later
ones come from the heap, which is rarely returned. After a few 20 MiB messages (the
received bytes, the stamped copy, the sealed copy) a process kept ~100 MiB more resident
for good (issue 8: an SMTP process at 199 MiB resident after three 20 MiB messages, 139 MiB
with the fixed threshold; the serving process 142 -> 102 MiB). A fixed threshold keeps
large buffers mapped and returned: a few page faults per large message instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import sys

M_MMAP_THRESHOLD = -3  # glibc malloc.h
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
"""At 1 MiB every buffer of a 1 MiB message was mapped and unmapped again: +25 % CPU per 1 MiB
message in bench/run. Buffers of 4 MiB and up are rare enough to map each time."""

log = logging.getLogger("gateway.memory")


def return_large_blocks() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD_BYTES`; True when applied (False elsewhere, harmlessly)."""
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


def freeze_startup_objects() -> int:
    """Keep the objects alive after start-up out of the cyclic collector's work (``gc.freeze``).

    Modules, settings, SQLAlchemy's metadata, templates: ~130,000 objects that live as long
    as the process. A full collection walks every tracked object and holds the GIL while it
    does: under a 10 KiB SMTP load, two full collections of 76 and 78 ms stalled every
    session of the process (issue 8, measured with ``gc.callbacks``); with these frozen, the
    full collections in the same load walked 5,000–19,000 objects. What is created
    afterwards is collected as before. Garbage is collected first so that none of it is
    frozen. Returns how many objects were frozen.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
