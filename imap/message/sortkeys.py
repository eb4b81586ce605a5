"""Sort keys from the ENVELOPE summary: SORT (RFC 5256 §3) and SORT=DISPLAY (RFC 5957).

Strings compare as RFC 5256 asks (``i;ascii-casemap``, extended here to every letter by
upper-casing, as Dovecot's ``i;unicode-casemap`` orders them); the keys below are already
mapped, so plain ``<`` orders them.
"""

from __future__ import annotations

import re
from email.header import decode_header, make_header

from imap.proto.structure import Address

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
    text = _WSP.sub(" ", decoded(subject))  # step 1: white space runs are one space
    while True:
        while (trimmed := _TRAILER.sub("", text)) != text:  # step 2
            text = trimmed
        while True:  # steps 3-5
            before = text
            text = _LEADER.sub("", text, count=1)
            blob = _BLOB_LEADER.match(text)
            if blob and text[blob.end() :]:  # step 4: unless nothing would be left
                text = text[blob.end() :]
            if text == before:
                break
        fwd = _FWD_HDR.match(text)  # step 6
        if fwd is None:
            return text.upper()
        text = fwd.group(1)


def mailbox_key(addresses: tuple[Address, ...]) -> str:
    """RFC 5256 §3 FROM / TO / CC: the first address's mailbox (a group's name is its first)."""
    return (addresses[0].mailbox or "").upper() if addresses else ""


def display_key(addresses: tuple[Address, ...]) -> str:
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
