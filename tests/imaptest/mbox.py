"""The messages a test appends, read from its mbox as imaptest does (``mailbox-source-mbox.c``).

Each message is the lines between two ``From `` separator lines (the blank line before the
next separator included), with CRLF line ends; its INTERNALDATE is the separator's date
(``mbox_from_parse``: asctime form, a numeric zone if given, else local time). Messages are
handed out in order and the file starts over when it runs out (``messages: n`` larger than
the file).
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass
from pathlib import Path

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FROM_LINE = re.compile(
    rb"From (?:\"(?:[^\"\\]|\\.)*\"\S*|\S*) +(?:[A-Za-z]{3}) ([A-Za-z]{3}) +(\d{1,2}) (\d\d):(\d\d)(?::(\d\d))? "
    rb"(?:([+-]\d{4}) )?(?:[A-Za-z]+ )?(\d{4})(?: ([+-]\d{4}))?")


@dataclass(frozen=True)
class Message:
    data: bytes  # CRLF line ends
    timestamp: int
    zone_minutes: int

    @property
    def internaldate(self) -> str:
        """``imap_to_datetime_tz``: ``dd-Mon-yyyy hh:mm:ss +zzzz``."""
        tm = time.gmtime(self.timestamp + self.zone_minutes * 60)
        sign = "-" if self.zone_minutes < 0 else "+"
        zone = abs(self.zone_minutes)
        return (f"{tm.tm_mday:02d}-{MONTHS[tm.tm_mon - 1]}-{tm.tm_year:04d} "
                f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} {sign}{zone // 60:02d}{zone % 60:02d}")


def _from_date(line: bytes) -> tuple[int, int] | None:
    match = FROM_LINE.match(line)
    if match is None or match.group(1).decode().title() not in MONTHS:
        return None
    month = MONTHS.index(match.group(1).decode().title()) + 1
    day, hour, minute = int(match.group(2)), int(match.group(3)), int(match.group(4))
    second, year = int(match.group(5) or 0), int(match.group(7))
    zone_text = match.group(6) or match.group(8)
    fields = (year, month, day or 1, hour, minute, second)
    if zone_text is None:
        stamp = int(time.mktime((*fields, 0, 0, -1)))  # local time, as imaptest assumes
        zone_seconds = calendar.timegm(time.localtime(stamp)) - stamp
        return stamp, zone_seconds // 60
    # mbox_from_parse reads "+hhmm" as hh hours and mm *seconds*; kept, it only matters for odd zones
    zone_seconds = int(zone_text[1:3]) * 3600 + int(zone_text[3:5])
    if zone_text[:1] == b"-":
        zone_seconds = -zone_seconds
    return calendar.timegm((*fields, 0, 0, 0)) - zone_seconds, zone_seconds // 60


def read_mbox(path: Path) -> list[Message]:
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    messages: list[Message] = []
    current: list[bytes] | None = None
    stamp = (0, 0)
    for line in lines:
        line = line[:-1] if line.endswith(b"\r") else line
        date = _from_date(line) if line.startswith(b"From ") else None
        if date is not None and (current is None or current):
            if current:
                messages.append(Message(b"".join(x + b"\r\n" for x in current), *stamp))
            current, stamp = [], date
        elif date is not None:
            stamp = date  # "empty body": the separator before it is skipped
        elif current is None:
            raise ValueError(f"{path}: not an mbox file (no From_ line first)")
        else:
            current.append(line)
    if current is None:
        raise ValueError(f"{path}: empty mbox file")
    if not current:
        raise ValueError(f"{path}: mbox file ends with From-line")
    messages.append(Message(b"".join(x + b"\r\n" for x in current), *stamp))
    return messages


class MboxSource:
    """Hands out a test's messages in order, starting over at the end of the file."""

    def __init__(self, path: Path) -> None:
        self.messages = read_mbox(path)
        self.next_index = 0

    def next(self) -> Message:
        message = self.messages[self.next_index % len(self.messages)]
        self.next_index += 1
        return message

    @property
    def at_end(self) -> bool:
        """Every message handed out once (``messages: all`` stops here)."""
        return self.next_index >= len(self.messages)
