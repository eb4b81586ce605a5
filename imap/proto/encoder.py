"""Response encoder (RFC 3501 §4 data formats, §7 responses).

Values are plain Python data: ``None`` → NIL, ``int`` → number, ``str``/``bytes`` → string
(quoted when safe, otherwise a literal, §4.3), :class:`Atom` → as is, list/tuple →
parenthesised list, :class:`Literal` → forced literal, :class:`Raw` → pre-encoded bytes.
Response texts are cleaned of CR/LF so a client-supplied value can never inject a line.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from imap.proto import mutf7
from imap.proto.reader import ATOM_CHARS
from imap.proto.structure import BodyStructure, Envelope, EnvelopeAddress

MAX_QUOTED = 1024  # longer strings go out as literals


@dataclass(frozen=True, slots=True)
class Atom:
    value: str


@dataclass(frozen=True, slots=True)
class Literal:
    value: bytes


@dataclass(frozen=True, slots=True)
class Raw:
    value: bytes


NIL = Atom("NIL")
Value = None | int | str | bytes | Atom | Literal | Raw | Sequence["Value"]


_UNQUOTABLE = re.compile(rb"[^\x20-\x7e]")


def _safe_for_quoted(data: bytes) -> bool:
    # RFC 3501 §9 QUOTED-CHAR: 7-bit TEXT-CHAR (no CR, LF, NUL) with \ and " escaped.
    return len(data) <= MAX_QUOTED and _UNQUOTABLE.search(data) is None


def quoted(data: str | bytes) -> bytes:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n" % len(data) + data


def string(data: str | bytes) -> bytes:
    """A quoted string when possible, else a literal (non-ASCII, CR/LF, long)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return quoted(raw) if _safe_for_quoted(raw) else literal(raw)


def nstring(data: str | bytes | None) -> bytes:
    return b"NIL" if data is None else string(data)


def astring(data: str | bytes) -> bytes:
    """An atom when every octet is an ASTRING-CHAR (and it is not ``NIL``), else a string."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if raw and raw.upper() != b"NIL" and all(b in ATOM_CHARS or b == 0x5D for b in raw):
        return raw
    return string(raw)


def mailbox(name: str, *, utf8: bool = False) -> bytes:
    """A mailbox name: modified UTF-7 (RFC 3501 §5.1.3), then as an astring; or, once the
    client enabled UTF-8 (RFC 6855 §3, RFC 9051 §5.1), the name itself in UTF-8, quoted."""
    if not utf8:
        return astring(mutf7.encode(name))
    raw = name.encode("utf-8")
    if raw.isascii():
        return astring(raw)
    return utf8_string(raw)


_UNQUOTABLE_UTF8 = re.compile(rb"[\x00-\x1f\x7f]")


def utf8_string(data: bytes) -> bytes:
    """RFC 6855 §3 ``quoted =/ DQUOTE *uQUOTED-CHAR DQUOTE``: valid UTF-8 without controls
    goes quoted, anything else as a literal. Only for a client that enabled UTF-8."""
    if len(data) <= MAX_QUOTED and _UNQUOTABLE_UTF8.search(data) is None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return literal(data)
        return quoted(data)
    return literal(data)


def encode(value: Value) -> bytes:
    if value is None:
        return b"NIL"
    if isinstance(value, bool):
        raise TypeError("bool is not an IMAP value")
    if isinstance(value, int):
        return str(value).encode("ascii")
    if isinstance(value, str | bytes):
        return string(value)
    if isinstance(value, Atom):
        return value.value.encode("ascii")
    if isinstance(value, Literal):
        return literal(value.value)
    if isinstance(value, Raw):
        return value.value
    return b"(" + b" ".join(encode(v) for v in value) + b")"


def flags(values: Iterable[str]) -> bytes:
    return b"(" + b" ".join(f.encode("ascii") for f in values) + b")"


def _text(text: str) -> bytes:
    return "".join(ch if " " <= ch <= "~" else " " for ch in text).encode("ascii")


# --- responses (RFC 3501 §7) ------------------------------------------------------------
def untagged(*parts: bytes | str) -> bytes:
    """``* part part ...`` CRLF: untagged data (EXISTS, FETCH, LIST...); ``str`` parts are
    cleaned of CR/LF. Status responses (``OK``/``NO``/``BAD``/``BYE``) and continuation
    requests come from :meth:`imap.proto.replies.Reply.line`."""
    return b"* " + b" ".join(p if isinstance(p, bytes) else _text(p) for p in parts) + b"\r\n"


def continuation_data(base64_data: bytes) -> bytes:
    """``+ base64`` CRLF (RFC 3501 §7.5): a SASL challenge, data rather than text."""
    return b"+ " + base64_data + b"\r\n"


def fetch_response(seq: int, items: Sequence[tuple[str, Value]]) -> bytes:
    """``* seq FETCH (NAME value ...)`` (RFC 3501 §7.4.2)."""
    body = b" ".join(name.encode("ascii") + b" " + encode(value) for name, value in items)
    return b"* %d FETCH (" % seq + body + b")\r\n"


# --- ENVELOPE and BODYSTRUCTURE (RFC 3501 §7.4.2) ---------------------------------------
# UTF-8 header fields (RFC 6532, SMTPUTF8 mail) reach a client that enabled UTF-8 as they
# are, in UTF-8 quoted strings (RFC 6855 §3). For one that did not, RFC 6855 §5 leaves the
# choice to the server: the message itself is neither hidden nor rewritten (BODY[] is the
# stored octets: a surrogate would break signatures, and mail must not vanish from a legacy
# client), but the ENVELOPE the server derives is made 7-bit: non-ASCII text as RFC 2047
# encoded-words, and an address whose local part or domain is not ASCII as an empty group
# named by the encoded address, in the manner of RFC 6857's address downgrading.
def _env_text(value: str | None, utf8: bool) -> Value:
    if value is None or value.isascii():
        return value
    if utf8:
        return Raw(utf8_string(value.encode("utf-8")))
    return encoded_words(value)


def encoded_words(value: str) -> str:
    """``value`` as RFC 2047 ``=?utf-8?b?...?=`` words (each at most 75 octets), space-separated."""
    words = []
    chunk = ""
    for ch in value:  # whole characters per word (RFC 2047 §5: no split inside one)
        if len(base64.b64encode((chunk + ch).encode("utf-8"))) > 75 - len("=?utf-8?b??="):
            words.append(chunk)
            chunk = ""
        chunk += ch
    words.append(chunk)
    return " ".join("=?utf-8?b?" + base64.b64encode(w.encode("utf-8")).decode("ascii") + "?=" for w in words)


def _addresses(addresses: tuple[EnvelopeAddress, ...], utf8: bool) -> Value:
    if not addresses:
        return None
    out: list[Value] = []
    for a in addresses:
        if utf8 or ((a.mailbox or "").isascii() and (a.host or "").isascii()):
            out.append([_env_text(part, utf8) for part in (a.name, a.adl, a.mailbox, a.host)])
            continue
        spec = f"{a.mailbox}@{a.host}" if a.host else (a.mailbox or "")
        named = f"{a.name} <{spec}>" if a.name else spec
        out += [[None, None, encoded_words(named), None], [None, None, None, None]]  # RFC 3501 §7.4.2 group
    return Raw(b"(" + b"".join(encode(address) for address in out) + b")")  # RFC 3501 §9: no SP between


def envelope(env: Envelope, *, utf8: bool = False) -> Value:
    """``utf8``: the client enabled UTF-8 (RFC 6855, IMAP4rev2); else 7-bit only (see above)."""
    return [
        _env_text(env.date, utf8), _env_text(env.subject, utf8), _addresses(env.from_, utf8),
        _addresses(env.sender, utf8), _addresses(env.reply_to, utf8), _addresses(env.to, utf8),
        _addresses(env.cc, utf8), _addresses(env.bcc, utf8), _env_text(env.in_reply_to, utf8),
        _env_text(env.message_id, utf8),
    ]  # fmt: skip


def _params(params: tuple[tuple[str, str], ...]) -> Value:
    if not params:
        return None
    return [item for pair in params for item in pair]


def _extension(bs: BodyStructure) -> list[Value]:
    disposition: Value = None
    if bs.disposition is not None:
        disposition = [bs.disposition.value, _params(bs.disposition.params)]
    language: Value = None if bs.language is None else list(bs.language)
    return [disposition, language, bs.location]


def bodystructure(bs: BodyStructure, *, extended: bool = True) -> Value:
    """BODYSTRUCTURE (``extended``) or the non-extensible BODY form."""
    if bs.is_multipart:
        multi: list[Value] = [Raw(b"".join(encode(bodystructure(p, extended=extended)) for p in bs.parts))]
        multi.append(bs.subtype)
        if extended:
            multi += [_params(bs.params), *_extension(bs)]
        return multi
    out: list[Value] = [
        bs.type, bs.subtype, _params(bs.params), bs.id, bs.description, bs.encoding, bs.size,
    ]  # fmt: skip
    if bs.type.upper() == "MESSAGE" and bs.subtype.upper() == "RFC822" and bs.body is not None:
        out += [envelope(bs.envelope or Envelope()), bodystructure(bs.body, extended=extended), bs.lines or 0]
    elif bs.type.upper() == "TEXT":
        out.append(bs.lines or 0)
    if extended:
        out += [bs.md5, *_extension(bs)]
    return out
