"""Content-transfer-encodings for BINARY (RFC 3516): a part's content decoded for
``BINARY[section]`` / ``BINARY.SIZE[section]`` (§4.3), and a message APPENDed as a ``literal8``
(§4.2) stored with its ``binary`` parts in base64, so that ``BODY[...]`` never carries a NUL
(RFC 3501 §4.3) while ``BINARY[...]`` gives back the octets the client sent.
"""

from __future__ import annotations

import binascii
import re

from imap.message.mime import Part, parse

#: RFC 2045 §6.1 identity encodings: the content is the body as it is.
IDENTITY = frozenset({"", "7bit", "8bit", "binary"})
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
_CTE_BINARY = re.compile(rb"(?im)^(content-transfer-encoding:)[ \t]*binary[ \t]*(?=\r?$)")


class UnknownEncoding(ValueError):
    """A content-transfer-encoding this server cannot decode (RFC 3516 §4.3 UNKNOWN-CTE)."""


class InvalidEncoding(ValueError):
    """Content that its content-transfer-encoding cannot decode."""


def encoding_of(part: Part) -> str:
    return str(part.headers.get("content-transfer-encoding", "")).strip().lower()


def decoded(part: Part) -> bytes:
    """The part's body with its content-transfer-encoding removed (RFC 2045 §6)."""
    cte = encoding_of(part)
    if part.is_multipart or part.message is not None or cte in IDENTITY:
        return part.body  # RFC 2045 §6.4: composite types are never encoded
    if cte == "base64":
        try:
            return binascii.a2b_base64(part.body)  # characters outside the alphabet are ignored (§6.8)
        except binascii.Error as exc:
            raise InvalidEncoding(str(exc)) from None
    if cte == "quoted-printable":
        return quoted_printable(part.body)
    raise UnknownEncoding(cte)


def quoted_printable(data: bytes) -> bytes:
    """RFC 2045 §6.7: trailing white space dropped from each line (rule 3), ``=`` at the end
    of a line a soft line break (rule 5), ``=XX`` an octet; any other ``=`` is kept as is."""
    out = bytearray()
    lines = data.split(b"\n")
    for index, line in enumerate(lines):
        line = line.removesuffix(b"\r").rstrip(b" \t")
        soft = line.endswith(b"=")
        out += _QP_ESCAPE.sub(lambda m: bytes([int(m[1], 16)]), line[:-1] if soft else line)
        if not soft and index < len(lines) - 1:
            out += b"\r\n"
    return bytes(out)


def base64_binary_parts(raw: bytes) -> bytes:
    """``raw`` with each single part whose encoding is ``binary`` re-encoded in base64 and its
    ``Content-Transfer-Encoding`` header changed to match (RFC 3516 §4.2)."""
    edits: list[tuple[int, int, bytes]] = []
    _collect(parse(raw), raw, edits)
    out = raw
    for start, end, data in sorted(edits, reverse=True):
        out = out[:start] + data + out[end:]
    return out


def _collect(part: Part, raw: bytes, edits: list[tuple[int, int, bytes]]) -> None:
    if part.message is not None:
        _collect(part.message, raw, edits)
        return
    if part.children:
        for child in part.children:
            _collect(child, raw, edits)
        return
    if part.is_multipart or encoding_of(part) != "binary":
        return
    lines = [binascii.b2a_base64(part.body[i : i + 57], newline=False) for i in range(0, len(part.body), 57)]
    body = b"\r\n".join(lines) + (b"\r\n" if part.end == len(raw) else b"")
    edits.append((part.body_start, part.end, body))
    edits.append((part.start, part.body_start, _CTE_BINARY.sub(rb"\1 base64", part.header)))
