"""Sort keys from the ENVELOPE summary: SORT (RFC 5256 §3) and SORT=DISPLAY (RFC 5957).

Strings compare as RFC 5256 asks (``i;ascii-casemap``, extended here to every letter by
upper-casing, as Dovecot's ``i;unicode-casemap`` orders them); the keys below are already
mapped, so plain ``<`` orders them.
"""

from __future__ import annotations

import datetime as dt
import re
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime

from imap.proto.structure import EnvelopeAddress

_WSP = re.compile(r"[ \t\r\n]+")
_TRAILER = re.compile(r"(?:\s*\(fwd\)|\s+)\Z", re.IGNORECASE)  # subj-trailer (RFC 5256 §5)
_BLOB = r"\[[^\[\]]*\]\s*"  # subj-blob
_REFWD = r"(?:re|fwd?)\s*(?:" + _BLOB + r")?:"  # subj-refwd
_LEADER = re.compile(r"\A(?:(?:" + _BLOB + r")*" + _REFWD + r"|\s+)", re.IGNORECASE)  # subj-leader
_BLOB_LEADER = re.compile(r"\A" + _BLOB)
_FWD_HDR = re.compile(r"\A\[fwd:(.*)\]\Z", re.IGNORECASE | re.DOTALL)  # subj-fwd-hdr ... subj-fwd-trl


def decoded(value: str | None) -> str:
    """RFC 2047 words decoded (RFC 5256 §2.1 step 1); undecodable text kept as it is."""
    if not value:
        return ""
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def base_subject(subject: str | None) -> str:
    """RFC 5256 §2.1: the base subject, upper-cased for comparison."""
    return subject_info(subject)[0]


def subject_info(subject: str | None) -> tuple[str, bool]:
    """The base subject (RFC 5256 §2.1), and whether the subject was a reply or forward
    (a trailer, a ``Re:`` / ``Fwd:`` leader or a ``[fwd: ...]`` was removed; §2.2 (E))."""
    text = _WSP.sub(" ", decoded(subject))  # step 1: white space runs are one space
    reply = False
    while True:
        while (trimmed := _TRAILER.sub("", text)) != text:  # step 2
            reply = reply or "(" in text[len(trimmed) :]
            text = trimmed
        while True:  # steps 3-5
            before = text
            leader = _LEADER.match(text)
            if leader:
                reply = reply or bool(leader.group().strip())
                text = text[leader.end() :]
            blob = _BLOB_LEADER.match(text)
            if blob and text[blob.end() :]:  # step 4: unless nothing would be left
                text = text[blob.end() :]
            if text == before:
                break
        fwd = _FWD_HDR.match(text)  # step 6
        if fwd is None:
            return text.upper(), reply
        text, reply = fwd.group(1), True


def mailbox_key(addresses: tuple[EnvelopeAddress, ...]) -> str:
    """RFC 5256 §3 FROM / TO / CC: the first address's mailbox (a group's name is its first)."""
    return (addresses[0].mailbox or "").upper() if addresses else ""


def display_key(addresses: tuple[EnvelopeAddress, ...]) -> str:
    """RFC 5957 §3 DISPLAYFROM / DISPLAYTO: the first address's display name (RFC 2047
    decoded), else its address (a group: its name), as Dovecot forms it."""
    if not addresses:
        return ""
    first = addresses[0]
    if first.name:
        return decoded(first.name).upper()
    if first.host:
        return f"{first.mailbox or ''}@{first.host}".upper()
    return (first.mailbox or "").upper()


def sent_date(date: str | None, fallback: dt.datetime) -> dt.datetime:
    """RFC 5256 §3 "sent date": the Date header in UTC, else ``fallback`` (the INTERNALDATE)."""
    try:
        sent = parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError, IndexError):
        sent = None
    return fallback if sent is None or sent.tzinfo is None else sent.astimezone(dt.UTC)
