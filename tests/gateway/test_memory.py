"""glibc's mmap threshold fixed (4 MiB): large buffers go back to the system when freed."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from gateway.app.memory import return_large_blocks

SCRIPT = """
import sys
from gateway.app.memory import return_large_blocks
if sys.argv[1] == "fixed":
    return_large_blocks()
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 // 2**20
first = b"m" * (20 * 2**20)  # a 20 MiB message: glibc then raises its threshold past 8 MiB
del first
copies = [b"c" * (8 * 2**20) for _ in range(4)]  # later large buffers
pinned = b"p" * 200_000  # a block allocated after them keeps the heap from shrinking
del copies
print(rss())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_large_buffers_are_returned_after_use() -> None:
    assert return_large_blocks() is True
    fixed = int(subprocess.run([sys.executable, "-c", SCRIPT, "fixed"], capture_output=True, text=True,
                               check=True).stdout)
    default = int(subprocess.run([sys.executable, "-c", SCRIPT, "default"], capture_output=True, text=True,
                                 check=True).stdout)
    assert fixed < 25, f"{fixed} MiB resident after freeing the large buffers"
    assert default > fixed + 25, "the default threshold should have kept the 32 MiB of copies"


FREEZE = """
import gc, json
import gateway.app.cli.main, gateway.app.server  # noqa: F401  (what a serving process has imported)
from gateway.app.memory import freeze_startup_objects
before = len(gc.get_objects())
frozen = freeze_startup_objects()
after = len(gc.get_objects())
cycle = []
cycle.append(cycle)  # garbage made after the freeze is still collected
del cycle
print(json.dumps({"before": before, "frozen": frozen, "after": after, "collected": gc.collect()}))
"""


def test_startup_objects_are_frozen_and_later_garbage_still_collected() -> None:
    out = json.loads(subprocess.run([sys.executable, "-c", FREEZE], capture_output=True, text=True,
                                    check=True).stdout)
    assert out["frozen"] > 10_000 and out["frozen"] >= out["before"] - 1_000
    assert out["after"] < 1_000, out  # a full collection no longer walks them
    assert out["collected"] >= 1
