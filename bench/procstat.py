"""CPU and memory of a server's process tree, read from /proc (Linux only).

CPU: ``utime + stime`` of the root process, plus ``cutime + cstime`` (children it has
already reaped), plus ``utime + stime`` of every live descendant. That total only grows,
whatever children come and go, so a delta between two readings is the tree's CPU time.
Memory: a sampler thread records the largest sum of RSS (and of PSS) over the tree, and
the root's ``VmHWM``. A server of several trees (gateway nodes, PostgreSQL backends) is
sampled as the sum over roots given by a function, asked again at every sample.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            data = f.read()
    except OSError:
        return None
    # the command name is in parentheses and may hold spaces: split after the last ')'
    return data[data.rindex(")") + 2 :].split()


def children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat(int(entry))
        if fields is None:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def descendants(root: int, tree: dict[int, list[int]] | None = None) -> list[int]:
    tree = children_map() if tree is None else tree
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(tree.get(pid, []))
    return out


def tree_cpu_seconds(root: int) -> float:
    """Cumulative CPU seconds of ``root`` and all its descendants, dead or alive."""
    total = 0
    for pid in descendants(root):
        fields = _stat(pid)
        if fields is None:
            continue
        # after the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
        total += int(fields[11]) + int(fields[12])
        if pid == root:
            total += int(fields[13]) + int(fields[14])
    return total / CLK_TCK


def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory_kib(root: int, tree: dict[int, list[int]] | None = None) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) over the tree, KiB."""
    pids = descendants(root, tree)
    return sum(_status_kib(p, "VmRSS") for p in pids), sum(_pss_kib(p) for p in pids)


def roots_of(root: int | Callable[[], list[int]]) -> list[int]:
    return root() if callable(root) else [root]


@dataclass
class Sampler:
    """Samples the tree's memory every ``interval`` seconds between ``start()`` and ``stop()``;
    ``root`` is one process, or a function giving the roots of several trees (summed)."""

    root: int | Callable[[], list[int]]
    interval: float = 0.1
    peak_rss_kib: int = 0
    peak_pss_kib: int = 0
    max_processes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        tree = children_map()
        roots = roots_of(self.root)
        sizes = [tree_memory_kib(r, tree) for r in roots]
        self.peak_rss_kib = max(self.peak_rss_kib, sum(rss for rss, _ in sizes))
        self.peak_pss_kib = max(self.peak_pss_kib, sum(pss for _, pss in sizes))
        self.max_processes = max(self.max_processes, sum(len(descendants(r, tree)) for r in roots))

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Sampler:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()
        return self


def vm_hwm_kib(pid: int) -> int:
    return _status_kib(pid, "VmHWM")
