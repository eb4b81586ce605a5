"""Sets of UIDs as sorted, disjoint, inclusive ranges, for ``VANISHED (EARLIER)`` answers
(RFC 7162 §3.2.5.2, §3.2.6).

A server that no longer knows exactly which UIDs were expunged since a client's
mod-sequence answers with every UID below UIDNEXT that no longer exists (§3.2.5.2: UIDs the
client never saw may be included): in a mailbox that lived for years those are millions of
UIDs but few ranges, so they are kept and filtered as ranges, never as lists of numbers.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

Range = tuple[int, int]


def compact(values: Iterable[int]) -> tuple[Range, ...]:
    """``[1, 2, 3, 7]`` as ``((1, 3), (7, 7))``."""
    out: list[Range] = []
    for v in sorted(set(values)):
        if out and v == out[-1][1] + 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return tuple(out)


def missing(live: Sequence[int], top: int) -> tuple[Range, ...]:
    """The UIDs ``1..top`` not in ``live`` (ascending UIDs)."""
    out: list[Range] = []
    nxt = 1
    for uid in live:
        if uid > top:
            break
        if uid > nxt:
            out.append((nxt, uid - 1))
        nxt = max(nxt, uid + 1)
    if nxt <= top:
        out.append((nxt, top))
    return tuple(out)


def without(ranges: Sequence[Range], points: Sequence[int]) -> list[Range]:
    """``ranges`` less the ascending UIDs ``points``."""
    out: list[Range] = []
    for lo, hi in ranges:
        start = lo
        for p in points[bisect.bisect_left(points, lo):bisect.bisect_right(points, hi)]:
            if p > start:
                out.append((start, p - 1))
            start = p + 1
        if start <= hi:
            out.append((start, hi))
    return out


def intersect(a: Sequence[Range], b: Sequence[Range]) -> list[Range]:
    """Both sorted and disjoint: the ranges in both."""
    out: list[Range] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def highest(ranges: Sequence[Range]) -> int:
    return ranges[-1][1] if ranges else 0


def format_ranges(ranges: Sequence[Range]) -> str:
    """IMAP ``sequence-set`` syntax: ``1:3,7``."""
    return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in ranges)
