"""PREVIEW text (RFC 8970 §3.1) from a message's MIME tree, made once at delivery from the
one parse of the message (the store seals it in the summary; :mod:`gateway.mailstore.summaries`).

The first text part that is not an attachment, ``text/plain`` before ``text/html`` (tags,
scripts and styles dropped, entities decoded); quoted lines (``>``) left out; white space
collapsed; at most :data:`MAX_CHARS` characters (the RFC's limit is 256). A message without
such text has the empty preview (§3.1), not NIL: NIL means "not made" (``PREVIEW (LAZY)``).
"""

from __future__ import annotations

import html
import re
from dataclasses import replace

from imap.message import transfer
from imap.message.mime import Part

MAX_CHARS = 200
SCAN_OCTETS = 32 * 1024  # only the start of a long part is decoded
MAX_DEPTH = 20
_HIDDEN = re.compile(r"(?is)<(script|style|head)\b.*?</\1\s*>")
_TAG = re.compile(r"(?s)<[^>]*>")


def _leaves(part: Part, depth: int = 0) -> list[Part]:
    """Leaf parts in order; an attached message (message/rfc822) is not the message's text."""
    if depth < MAX_DEPTH and part.children:
        return [leaf for child in part.children for leaf in _leaves(child, depth + 1)]
    return [part]


def _is_attachment(part: Part) -> bool:
    try:
        return (part.headers.get_content_disposition() or "") == "attachment"
    except (ValueError, TypeError, IndexError, LookupError):
        return False


def _text(part: Part) -> str:
    head = replace(part, end=min(part.end, part.body_start + SCAN_OCTETS))
    try:
        data = transfer.decoded(head)
    except ValueError:  # unknown or broken transfer encoding: no text from this part
        return ""
    try:
        charset = head.headers.get_content_charset() or "utf-8"
        return data.decode(charset, "replace")
    except (LookupError, ValueError):
        return data.decode("utf-8", "replace")


def _plain(text: str) -> str:
    lines = (line for line in text.splitlines() if not line.lstrip().startswith(">"))
    return " ".join(" ".join(lines).split())


def preview(root: Part) -> str:
    leaves = [leaf for leaf in _leaves(root) if leaf.content_type[0] == "text" and not _is_attachment(leaf)]
    for subtype in ("plain", "html"):
        for leaf in leaves:
            if leaf.content_type[1] != subtype:
                continue
            text = _text(leaf)
            if subtype == "html":
                text = html.unescape(_TAG.sub(" ", _HIDDEN.sub(" ", text)))
            plain = _plain(text)
            if plain:
                return plain[:MAX_CHARS]
    return ""
