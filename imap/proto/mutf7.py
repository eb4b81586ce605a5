"""Modified UTF-7 for mailbox names (RFC 3501 §5.1.3).

Printable US-ASCII (0x20-0x7e) except ``&`` stands for itself; ``&`` is written ``&-``;
everything else is UTF-16BE, base64 with ``,`` instead of ``/`` and no padding, between
``&`` and ``-``.
"""

from __future__ import annotations

import base64
import binascii


class Malformed(ValueError):
    """Not valid modified UTF-7: a well-formed string that names no mailbox (the parser
    answers NO for a mailbox name, and a LIST pattern matches nothing)."""


def _b64(data: str) -> bytes:
    raw = data.encode("utf-16-be")
    return base64.b64encode(raw).rstrip(b"=").replace(b"/", b",")


def encode(name: str) -> bytes:
    """Encode a mailbox name to modified UTF-7."""
    out = bytearray()
    pending: list[str] = []

    def flush() -> None:
        if pending:
            out.extend(b"&" + _b64("".join(pending)) + b"-")
            pending.clear()

    for ch in name:
        if " " <= ch <= "~":
            flush()
            out.extend(b"&-" if ch == "&" else ch.encode("ascii"))
        else:
            pending.append(ch)
    flush()
    return bytes(out)


def decode(data: bytes) -> str:
    """Decode modified UTF-7; raises :class:`Malformed` on malformed input.

    RFC 3501 §5.1.3 forbids non-shortest forms (e.g. encoding printable ASCII, or two
    adjacent shifted runs): we reject them so that every name has one spelling.
    """
    out: list[str] = []
    i = 0
    n = len(data)
    last_was_shift = False
    while i < n:
        byte = data[i]
        if byte == 0x26:  # '&'
            end = data.find(b"-", i + 1)
            if end < 0:
                raise Malformed()
            chunk = data[i + 1 : end]
            i = end + 1
            if not chunk:
                out.append("&")
                last_was_shift = False
                continue
            if last_was_shift:
                raise Malformed()
            out.append(_decode_chunk(chunk))
            last_was_shift = True
            continue
        if not 0x20 <= byte <= 0x7E:
            raise Malformed()
        out.append(chr(byte))
        last_was_shift = False
        i += 1
    return "".join(out)


def _decode_chunk(chunk: bytes) -> str:
    padded = chunk.replace(b",", b"/") + b"=" * (-len(chunk) % 4)
    try:
        raw = base64.b64decode(padded, validate=True)
        text = raw.decode("utf-16-be")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Malformed() from None
    if any(" " <= ch <= "~" for ch in text) or _b64(text) != chunk:
        raise Malformed()
    return text
