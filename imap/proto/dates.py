"""IMAP date and date-time syntax (RFC 3501 §9 ``date``, ``date-time``).

``date-time`` is ``"dd-Mon-yyyy hh:mm:ss +zzzz"`` (day may be space-padded); ``date`` in
SEARCH is ``d-Mon-yyyy``, optionally quoted. Month names are English, case-insensitive.
"""

from __future__ import annotations

import datetime as dt
import re

from imap.proto import replies
from imap.proto.errors import BadCommand

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_INDEX = {m.upper(): i + 1 for i, m in enumerate(MONTHS)}

_DATE_TIME = re.compile(r"^([ \d]\d)-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$", re.ASCII)
_DATE = re.compile(r"^(\d{1,2})-([A-Za-z]{3})-(\d{4})$", re.ASCII)


def _month(name: str) -> int:
    try:
        return _MONTH_INDEX[name.upper()]
    except KeyError:
        raise BadCommand(replies.INVALID_DATE) from None


def parse_date_time(text: str) -> dt.datetime:
    """Parse an APPEND ``date-time`` (without the surrounding quotes) to an aware datetime."""
    m = _DATE_TIME.match(text)
    if m is None:
        raise BadCommand(replies.INVALID_DATE_TIME)
    day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
    offset = dt.timedelta(hours=int(zh), minutes=int(zm))
    if sign == "-":
        offset = -offset
    try:
        return dt.datetime(int(year), _month(mon), int(day), int(hh), int(mm), int(ss), tzinfo=dt.timezone(offset))
    except ValueError:
        raise BadCommand(replies.INVALID_DATE_TIME) from None


def parse_date(text: str) -> dt.date:
    """Parse a SEARCH ``date`` (``1-Feb-1994``)."""
    m = _DATE.match(text)
    if m is None:
        raise BadCommand(replies.INVALID_DATE)
    day, mon, year = m.groups()
    try:
        return dt.date(int(year), _month(mon), int(day))
    except ValueError:
        raise BadCommand(replies.INVALID_DATE) from None


def format_date_time(value: dt.datetime) -> str:
    """Format an INTERNALDATE: ``17-Jul-1996 02:44:25 -0700`` (naive values are UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    offset = value.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    return (
        f"{value.day:02d}-{MONTHS[value.month - 1]}-{value.year:04d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d} {sign}{minutes // 60:02d}{minutes % 60:02d}"
    )


def format_date(value: dt.date) -> str:
    return f"{value.day}-{MONTHS[value.month - 1]}-{value.year:04d}"
