"""The health documents of a parsed message (:class:`healthdocs.model.Found`), from the
message's one parse (:mod:`gateway.mailstore.parsing`): each leaf part that is an XDM
archive (:func:`healthdocs.xdm.candidate`) is decoded (base64, quoted-printable) and read
within the limits, with its IMAP part number (RFC 3501 §6.4.5) so the web inbox fetches that
part only; the ``X-MSS-CODECDA`` / ``X-MSS-INS`` headers are compared with what was found
(:func:`healthdocs.decide.header_notes`). Text parts are never decoded here.
"""

from __future__ import annotations

import binascii
import quopri
from collections.abc import Iterator

from gateway.mailstore.parsing import MAX_DEPTH, Parsed, part_filename
from healthdocs import decide
from healthdocs import xdm as xdm_format
from healthdocs.model import Archive, Found
from healthdocs.safezip import DEFAULT_LIMITS, ZipLimits, looks_like_zip
from imap.message import mime

_SKIPPED_TYPES = ("text", "multipart", "message")


def _numbered(part: mime.Part, number: str, depth: int) -> Iterator[tuple[str, mime.Part]]:
    """Leaf parts with their IMAP section numbers (an encapsulated message's parts are N.1, N.2...)."""
    if depth >= MAX_DEPTH:
        return
    if part.children:
        for i, child in enumerate(part.children, 1):
            yield from _numbered(child, f"{number}.{i}" if number else str(i), depth + 1)
    elif part.message is not None:
        inner = part.message
        if inner.children:
            yield from _numbered(inner, number, depth + 1)
        else:
            yield f"{number}.1", inner
    else:
        yield number or "1", part


def decoded_body(part: mime.Part) -> bytes:
    """A part's body without its Content-Transfer-Encoding (RFC 2045 §6)."""
    encoding = str(part.headers.get("Content-Transfer-Encoding", "")).strip().lower()
    body = part.body
    if encoding == "base64":
        try:
            return binascii.a2b_base64(body)
        except (binascii.Error, ValueError):
            return b""
    if encoding == "quoted-printable":
        return quopri.decodestring(body)
    return body


def part_bytes(parsed: Parsed, number: str) -> bytes | None:
    """The decoded body of the leaf part numbered ``number`` (an :class:`~healthdocs.model.Archive`'s
    ``part``), for the inbox to open the archive the summary lists; None when there is none."""
    for found, part in _numbered(parsed.root, "", 0):
        if found == number:
            return decoded_body(part)
    return None


def _starts_like_zip(part: mime.Part) -> bool:
    """The first decoded octets are a zip signature: only such a part is decoded whole (a 20 MB
    PDF attachment is not)."""
    encoding = str(part.headers.get("Content-Transfer-Encoding", "")).strip().lower()
    head = part.body[:256]
    if encoding == "base64":
        try:
            head = binascii.a2b_base64(b"".join(head.split())[:8])
        except (binascii.Error, ValueError):
            return False
    elif encoding == "quoted-printable":
        head = quopri.decodestring(head)
    return looks_like_zip(head)


def archives(parsed: Parsed, limits: ZipLimits = DEFAULT_LIMITS) -> tuple[Archive, ...]:
    found: list[Archive] = []
    for number, part in _numbered(parsed.root, "", 0):
        name = part_filename(part)
        if part.content_type[0] in _SKIPPED_TYPES and not name:
            continue
        named = name is not None and name.strip().upper() == xdm_format.XDM_NAME
        if not named and not _starts_like_zip(part):
            continue
        data = decoded_body(part)
        if xdm_format.candidate(name, data):
            found.append(xdm_format.read(data, part=number, filename=name, limits=limits))
    return tuple(found)


def found_in(parsed: Parsed, limits: ZipLimits = DEFAULT_LIMITS) -> Found:
    """The documents found in ``parsed``, with the notes on its MSS headers."""
    got = archives(parsed, limits)
    msg = parsed.headers
    codecda = [str(v) for v in msg.get_all("X-MSS-CODECDA") or []]
    ins_flag = msg.get("X-MSS-INS")
    found = Found(got)
    return Found(got, decide.header_notes(found, codecda, str(ins_flag) if ins_flag is not None else None))

