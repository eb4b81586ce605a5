"""Sequence sets: ``1,3:5,7:*`` (RFC 3501 §9 ``sequence-set``).

A :class:`SequenceSet` stores the ranges as written, with ``None`` standing for ``*``.
It is resolved against the current maximum: the message count (EXISTS) for message
sequence numbers, or the highest UID in the mailbox for UIDs (RFC 3501 §6.4.8: ``n:*``
always includes the last message, because ``n:m`` is the same as ``m:n``).

:data:`SAVED` is RFC 5182's ``$`` (``seq-last-command``): the saved search result, which only
the selected mailbox's view can resolve (:meth:`imap.selected_view.SelectedView.resolve`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass

from imap.proto import replies
from imap.proto.errors import BadCommand

_MAX_NZ = 0xFFFFFFFF  # RFC 3501 §9: nz-number is a 32-bit unsigned integer


def _parse_number(text: str) -> int | None:
    if text == "*":
        return None
    if not text.isdigit() or not text.isascii() or text.startswith("0"):
        raise BadCommand(replies.INVALID_SEQUENCE_SET)
    value = int(text)
    if value > _MAX_NZ:
        raise BadCommand(replies.INVALID_SEQUENCE_SET)
    return value


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """Parsed sequence set; ``ranges`` hold ``(first, last)`` as written, ``None`` = ``*``."""

    ranges: tuple[tuple[int | None, int | None], ...]
    saved: bool = False  # RFC 5182 ``$``: the ranges are empty, the view has the messages
    ordered: bool = False  # made by :meth:`of`: sorted, disjoint, no ``*`` (``contains`` bisects)

    @classmethod
    def parse(cls, text: str | bytes) -> SequenceSet:
        """Parse ``1,3:5,7:*``; raises :class:`BadCommand` on any syntax error."""
        if isinstance(text, bytes):
            text = text.decode("ascii", "replace")
        if not text:
            raise BadCommand(replies.INVALID_SEQUENCE_SET)
        ranges: list[tuple[int | None, int | None]] = []
        for item in text.split(","):
            first, sep, last = item.partition(":")
            start = _parse_number(first)
            end = _parse_number(last) if sep else start
            ranges.append((start, end))
        return cls(tuple(ranges))

    @classmethod
    def of(cls, *values: int) -> SequenceSet:
        """A set holding exactly ``values`` (compacted into ranges)."""
        return cls(tuple((lo, hi) for lo, hi in _compact(sorted(set(values)))), ordered=True)

    @property
    def uses_star(self) -> bool:
        return any(lo is None or hi is None for lo, hi in self.ranges)

    def resolve(self, maximum: int) -> list[tuple[int, int]]:
        """Sorted, merged, inclusive ranges with ``*`` replaced by ``maximum``.

        Values are *not* clipped to ``maximum``: UID sets may name UIDs that do not exist
        (they are silently ignored by the handler), while sequence numbers beyond EXISTS are
        an error, see :meth:`check_sequence_numbers`. With an empty mailbox (``maximum`` 0)
        ``*`` resolves to nothing.
        """
        if self.saved:  # never reached: the view resolves ``$`` before any range is looked at
            raise BadCommand(replies.INVALID_SEQUENCE_SET)
        out: list[tuple[int, int]] = []
        for first, last in self.ranges:
            if maximum <= 0 and (first is None or last is None):
                continue
            lo = maximum if first is None else first
            hi = maximum if last is None else last
            if lo > hi:
                lo, hi = hi, lo
            out.append((lo, hi))
        out.sort()
        merged: list[tuple[int, int]] = []
        for lo, hi in out:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
            else:
                merged.append((lo, hi))
        return merged

    def contains(self, value: int, maximum: int) -> bool:
        if self.ordered:  # e.g. ``$`` made UIDs for a SEARCH: one lookup per message, not a pass
            i = bisect.bisect_right(self.ranges, value, key=lambda r: r[0] or 0) - 1
            return i >= 0 and value <= (self.ranges[i][1] or 0)
        return any(lo <= value <= hi for lo, hi in self.resolve(maximum))

    def iter(self, maximum: int, *, clip: bool = True) -> Iterator[int]:
        """Yield the members in ascending order, clipped to ``1..maximum`` unless ``clip`` is False."""
        for lo, hi in self.resolve(maximum):
            if clip:
                hi = min(hi, maximum)
            yield from range(lo, hi + 1)

    def filter(self, values: list[int], maximum: int) -> list[int]:
        """Members of sorted ``values`` (e.g. existing UIDs) that are in this set."""
        out: list[int] = []
        for lo, hi in self.resolve(maximum):  # sorted and disjoint: slices come out in order
            out += values[bisect.bisect_left(values, lo) : bisect.bisect_right(values, hi)]
        return out

    def check_sequence_numbers(self, exists: int) -> None:
        """RFC 3501 §9 ``seq-number``: a message sequence number above EXISTS is invalid."""
        for lo, hi in self.resolve(exists):
            if hi > exists or lo < 1:
                raise BadCommand(replies.INVALID_SEQUENCE_NUMBER)

    def __str__(self) -> str:
        def fmt(v: int | None) -> str:
            return "*" if v is None else str(v)

        if self.saved:
            return "$"
        return ",".join(fmt(lo) if lo == hi else f"{fmt(lo)}:{fmt(hi)}" for lo, hi in self.ranges)


SAVED = SequenceSet((), saved=True)  # RFC 5182 §3 seq-last-command


def _compact(values: list[int]) -> Iterator[tuple[int, int]]:
    if not values:
        return
    start = prev = values[0]
    for v in values[1:]:
        if v == prev + 1:
            prev = v
            continue
        yield (start, prev)
        start = prev = v
    yield (start, prev)


def format_uids(values: list[int]) -> str:
    """Compact ``[1, 2, 3, 7]`` to ``1:3,7`` (for COPYUID / APPENDUID / MODIFIED codes)."""
    return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in _compact(sorted(values)))
