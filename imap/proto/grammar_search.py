"""SEARCH grammar (RFC 3501 §6.4.4 and §9 ``search-key``; RFC 7162 §3.1.5 MODSEQ; RFC 5032
OLDER / YOUNGER; RFC 8474 §6 EMAILID / THREADID; RFC 8514 §4.3 SAVED* keys).

Keys are normalised (see :mod:`imap.proto.command_types`). Nesting depth is bounded so that a
``NOT NOT NOT ...`` line cannot exhaust the stack.
"""

from __future__ import annotations

from collections.abc import Callable

from imap.proto import command_types as t
from imap.proto import replies
from imap.proto.dates import parse_date
from imap.proto.errors import CommandFailed
from imap.proto.reader import MAX_NUMBER64, Reader

MAX_DEPTH = 32
SUPPORTED_CHARSETS = ("US-ASCII", "UTF-8")

_FLAG_KEYS: dict[str, tuple[str, bool]] = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "RECENT": ("\\Recent", True),
    "SEEN": ("\\Seen", True),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
    "OLD": ("\\Recent", False),
}
_HEADER_KEYS = {"BCC": "Bcc", "CC": "Cc", "FROM": "From", "SUBJECT": "Subject", "TO": "To"}
_DATE_KEYS: dict[str, tuple[t.DateField, t.DateOp]] = {
    "BEFORE": (t.DateField.INTERNAL, t.DateOp.BEFORE),
    "ON": (t.DateField.INTERNAL, t.DateOp.ON),
    "SINCE": (t.DateField.INTERNAL, t.DateOp.SINCE),
    "SENTBEFORE": (t.DateField.SENT, t.DateOp.BEFORE),
    "SENTON": (t.DateField.SENT, t.DateOp.ON),
    "SENTSINCE": (t.DateField.SENT, t.DateOp.SINCE),
    "SAVEDBEFORE": (t.DateField.SAVED, t.DateOp.BEFORE),  # RFC 8514 §4.3
    "SAVEDON": (t.DateField.SAVED, t.DateOp.ON),
    "SAVEDSINCE": (t.DateField.SAVED, t.DateOp.SINCE),
}
# RFC 8474 §3.1: objectid = 1*255(ALPHA / DIGIT / "_" / "-")
_OBJECTID_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def parse_charset(reader: Reader) -> str | None:
    """``CHARSET astring`` when present; unknown charsets are NO [BADCHARSET] (§6.4.4)."""
    if reader.data[reader.pos : reader.pos + 8].upper() != b"CHARSET ":
        return None
    reader.pos += 8
    charset = check_charset(reader.astring().decode("ascii", "replace").upper())
    reader.sp()
    return charset


def check_charset(charset: str) -> str:
    """``charset`` (upper-cased) if supported, else NO [BADCHARSET] (RFC 3501 §6.4.4, RFC 5256 §3)."""
    if charset not in SUPPORTED_CHARSETS:
        raise CommandFailed(replies.UNSUPPORTED_CHARSET, code_arg="(" + " ".join(SUPPORTED_CHARSETS) + ")")
    return charset


def parse_search_keys(reader: Reader) -> t.SearchKey:
    """1*(search-key) separated by SP, to the end of the command: an implicit AND."""
    keys = [_key(reader, 0)]
    while reader.maybe_sp():
        keys.append(_key(reader, 0))
    return keys[0] if len(keys) == 1 else t.SearchAnd(tuple(keys))


def _search_date(reader: Reader) -> str:
    if reader.peek_is(b'"'):
        return reader.quoted().decode("ascii", "replace")
    return reader.atom()


def _string(reader: Reader) -> str:
    return reader.text_astring()


def _key(reader: Reader, depth: int) -> t.SearchKey:
    if depth > MAX_DEPTH:
        raise reader.error(replies.SEARCH_TOO_DEEP)
    if reader.peek_is(b"("):
        reader.pos += 1
        keys = [_key(reader, depth + 1)]
        while reader.maybe_sp():
            keys.append(_key(reader, depth + 1))
        reader.expect(b")")
        return keys[0] if len(keys) == 1 else t.SearchAnd(tuple(keys))
    first = reader.peek()
    if 0x30 <= first <= 0x39 or first in (0x2A, 0x24):  # digit, '*' or '$' (RFC 5182): a sequence set
        return t.SearchSet(reader.sequence_set())
    name = reader.keyword()
    simple = _SIMPLE.get(name)
    if simple is not None:
        return simple
    if name in _FLAG_KEYS:
        flag, present = _FLAG_KEYS[name]
        return t.SearchFlag(flag, present)
    if name in ("KEYWORD", "UNKEYWORD"):
        reader.sp()
        return t.SearchFlag(reader.atom(), name == "KEYWORD")
    if name in _HEADER_KEYS:
        reader.sp()
        return t.SearchHeader(_HEADER_KEYS[name], _string(reader))
    if name in _DATE_KEYS:
        reader.sp()
        field, op = _DATE_KEYS[name]
        return t.SearchDate(field, op, parse_date(_search_date(reader)))
    parser = _WITH_ARGS.get(name)
    if parser is None:
        raise reader.error(replies.UNKNOWN_SEARCH_KEY)
    reader.sp()
    return parser(reader, depth)


def _header(reader: Reader, depth: int) -> t.SearchKey:
    name = reader.astring().decode("ascii", "replace")
    reader.sp()
    return t.SearchHeader(name, _string(reader))


def _not(reader: Reader, depth: int) -> t.SearchKey:
    return t.SearchNot(_key(reader, depth + 1))


def _or(reader: Reader, depth: int) -> t.SearchKey:
    left = _key(reader, depth + 1)
    reader.sp()
    return t.SearchOr(left, _key(reader, depth + 1))


def _uid(reader: Reader, depth: int) -> t.SearchKey:
    return t.SearchSet(reader.sequence_set(), uid=True)


def _modseq(reader: Reader, depth: int) -> t.SearchKey:
    """RFC 7162 §3.1.5: MODSEQ [SP entry-name SP entry-type-req] SP mod-sequence-valzer."""
    if reader.peek_is(b'"'):
        entry = reader.quoted().decode("ascii", "replace")
        reader.sp()
        entry_type = reader.keyword().lower()
        if entry_type not in ("priv", "shared", "all"):
            raise reader.error(replies.INVALID_MODSEQ_ENTRY_TYPE)
        reader.sp()
        return t.SearchModSeq(reader.number(maximum=MAX_NUMBER64), entry, entry_type)
    return t.SearchModSeq(reader.number(maximum=MAX_NUMBER64))


def _age(older: bool) -> Callable[[Reader, int], t.SearchKey]:
    """RFC 5032 §3: ``OLDER nz-number`` / ``YOUNGER nz-number`` (seconds)."""

    def parse(reader: Reader, depth: int) -> t.SearchKey:
        return t.SearchAge(older, reader.number(nonzero=True))

    return parse


def _object_id(kind: str) -> Callable[[Reader, int], t.SearchKey]:
    """RFC 8474 §6: ``EMAILID objectid`` / ``THREADID objectid``."""

    def parse(reader: Reader, depth: int) -> t.SearchKey:
        value = reader.take(_OBJECTID_CHARS)
        if not 1 <= len(value) <= 255:
            raise reader.error()
        return t.SearchObjectId(kind, value.decode("ascii"))

    return parse


def _size(larger: bool) -> Callable[[Reader, int], t.SearchKey]:
    def parse(reader: Reader, depth: int) -> t.SearchKey:
        return t.SearchSize(larger, reader.number())

    return parse


def _text(scope: t.TextScope) -> Callable[[Reader, int], t.SearchKey]:
    def parse(reader: Reader, depth: int) -> t.SearchKey:
        return t.SearchText(scope, _string(reader))

    return parse


_SIMPLE: dict[str, t.SearchKey] = {
    "ALL": t.SearchAll(),
    "NEW": t.SearchAnd((t.SearchFlag("\\Recent"), t.SearchFlag("\\Seen", False))),
    "SAVEDATESUPPORTED": t.SearchSaveDateSupported(),  # RFC 8514 §4.3
}
_WITH_ARGS: dict[str, Callable[[Reader, int], t.SearchKey]] = {
    "HEADER": _header,
    "NOT": _not,
    "OR": _or,
    "UID": _uid,
    "MODSEQ": _modseq,
    "OLDER": _age(True),  # RFC 5032
    "YOUNGER": _age(False),
    "EMAILID": _object_id("EMAILID"),  # RFC 8474 §6
    "THREADID": _object_id("THREADID"),
    "LARGER": _size(True),
    "SMALLER": _size(False),
    "BODY": _text(t.TextScope.BODY),
    "TEXT": _text(t.TextScope.TEXT),
}
