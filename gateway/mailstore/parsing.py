"""The one MIME parse of a message, and what the gateway reads from it.

:func:`parse` is the only place the gateway parses a message's MIME structure (it runs
``imap.message.mime.parse``: part boundaries found on the raw bytes, each part's header
section read with :mod:`email`'s compat32 parser, no body decoded). A delivered message is
parsed once, by :func:`gateway.delivery.headers.parse_headers` at the end of DATA (or by the
pipeline for mail that did not come over SMTP); the same :class:`Parsed` gives the routing
header facts, the document count for the adoption figures and the summary sealed with the
message (:mod:`gateway.mailstore.summaries`), which IMAP ENVELOPE/BODYSTRUCTURE, the web
inbox list and the reply subject read afterwards.

Not counted as "our parse": dkimpy reads the raw bytes for DKIM verification and signing
(its own canonicalisation), and the patient web parses one message with ``email`` when it
is opened to show its text and attachments (``web/patient/mailview``).
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import UTC
from email.header import decode_header, make_header
from email.message import Message

from imap.message import mime

MAX_DEPTH = mime.MAX_DEPTH


@dataclass(frozen=True)
class Parsed:
    """A message's MIME tree (byte offsets into ``raw``; headers as compat32 ``Message``)."""

    root: mime.Part

    @property
    def headers(self) -> Message:
        return self.root.headers


def parse(raw: bytes) -> Parsed:
    """Parse ``raw`` once; never raises (a message that cannot be read has no headers)."""
    try:
        return Parsed(mime.parse(raw))
    except Exception:  # the email package raises many types on garbage: treat as no headers
        return Parsed(mime.Part(raw, 0, 0, len(raw), Message()))


def leaves(part: mime.Part, depth: int = 0) -> list[mime.Part]:
    """The leaf parts, in order, through multiparts and encapsulated messages."""
    if depth < MAX_DEPTH:
        if part.children:
            return [leaf for child in part.children for leaf in leaves(child, depth + 1)]
        if part.message is not None:
            return leaves(part.message, depth + 1)
    return [part]


def _disposition(part: mime.Part) -> str:
    try:
        return (part.headers.get_content_disposition() or "").lower()
    except (ValueError, TypeError, IndexError, LookupError):
        return ""


def _filename(part: mime.Part) -> str | None:
    try:
        name = part.headers.get_filename()
    except (ValueError, TypeError, IndexError, LookupError):
        return None
    return decoded(name) if name else None


def part_filename(part: mime.Part) -> str | None:
    """A part's file name (RFC 2183 ``filename``, RFC 2231 and 2047 forms decoded), if any."""
    return _filename(part)


def documents(parsed: Parsed) -> int:
    """Parts that are documents (the adoption figures): ``Content-Disposition: attachment``
    or a named leaf part."""
    return sum(1 for leaf in leaves(parsed.root) if _disposition(leaf) == "attachment" or _filename(leaf))


def attachment_names(parsed: Parsed) -> tuple[str, ...]:
    """The attachments the web inbox offers, by name (``piece-jointe-N`` when unnamed): leaf
    parts marked ``attachment``, or named and not marked ``inline``."""
    names: list[str] = []
    for leaf in leaves(parsed.root):
        disposition, name = _disposition(leaf), _filename(leaf)
        if leaf.is_multipart or leaf.message is not None:
            continue  # a container (cut at MAX_DEPTH) is not a document
        if disposition == "attachment" or (disposition != "inline" and name):
            names.append(name or f"piece-jointe-{len(names) + 1}")
    return tuple(names)


def _unfolded(value: str) -> str:
    """Unfolded (RFC 5322 §2.2.3), 8-bit octets (compat32 surrogates) read as UTF-8."""
    text = " ".join(value.replace("\r", "").split("\n")).strip()
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def _words(run: list[str]) -> str:
    """Adjacent encoded words decoded together (a character may be split across two)."""
    joined = " ".join(run)
    try:
        return str(make_header(decode_header(joined)))
    except (ValueError, LookupError, UnicodeError, TypeError, IndexError, AssertionError):
        return joined


def decoded(value: str) -> str:
    """A header value as text: unfolded, 8-bit octets read as UTF-8, RFC 2047 encoded words
    decoded (white space between adjacent ones dropped, RFC 2047 §6.2), other text kept."""
    text = _unfolded(value)
    out: list[str] = []
    run: list[str] = []
    end = 0
    for m in _ENCODED_WORD.finditer(text):
        between = text[end:m.start()]
        if run and between.strip():
            out.append(_words(run))
            run = []
        if not run:
            out.append(between)
        run.append(m.group())
        end = m.end()
    if run:
        out.append(_words(run))
    out.append(text[end:])
    return "".join(out).strip()


def _raw(msg: Message, name: str) -> str | None:
    """The first ``name`` field as received (compat32 would turn 8-bit octets into U+FFFD)."""
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            return value if isinstance(value, str) else str(value)
    return None


def header_text(msg: Message, name: str) -> str | None:
    value = _raw(msg, name)
    return None if value is None else decoded(value)


def first_author(msg: Message) -> tuple[str, str]:
    """(display name, address) of the first ``From:`` mailbox; empty strings when unreadable."""
    try:
        value = _raw(msg, "From")
        pairs = email.utils.getaddresses([_unfolded(value)]) if value is not None else []
    except (ValueError, TypeError, IndexError, LookupError):
        return "", ""
    for name, address in pairs:  # split first, then decode: an encoded name may hold a comma
        if name or address:
            return decoded(name) if name else "", address.strip()
    return "", ""


def date_iso(msg: Message) -> str | None:
    """The ``Date:`` header as ISO 8601 (UTC assumed when it names no zone), None if unreadable."""
    value = header_text(msg, "Date")
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (ValueError, TypeError, IndexError):
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()
