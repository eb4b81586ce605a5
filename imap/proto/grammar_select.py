"""Selected-state command grammar (RFC 3501 §6.4, RFC 4315 UID EXPUNGE, RFC 6851 MOVE,
RFC 7162 CHANGEDSINCE / UNCHANGEDSINCE).
"""

from __future__ import annotations

from collections.abc import Callable

from imap.proto import command_types as t
from imap.proto import commands as c
from imap.proto import replies
from imap.proto.grammar_qresync import fetch_modifiers
from imap.proto.grammar_search import check_charset, parse_charset, parse_search_keys
from imap.proto.reader import MAX_NUMBER64, Reader
from imap.proto.seqset import SequenceSet

Parser = Callable[[Reader, str], c.Command]
_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.")
_SPEC_CHARS = _NAME_CHARS


def _seqset(reader: Reader) -> SequenceSet:
    reader.sp()
    return reader.sequence_set()  # RFC 5182: ``$`` wherever a command takes a sequence-set


def _expunge(uid: bool) -> Parser:
    def parse(reader: Reader, tag: str) -> c.Command:
        return c.Expunge(tag, uid, _seqset(reader) if uid else None)

    return parse


ESEARCH_OPTIONS = ("MIN", "MAX", "ALL", "COUNT")  # RFC 4731 §3.1 search-return-opt
# RFC 5182 §3 SAVE; RFC 5267 §4.1 CONTEXT (a hint), UPDATE, §4.4 PARTIAL: SEARCH only (no CONTEXT=SORT)
SEARCH_OPTIONS = (*ESEARCH_OPTIONS, "SAVE", "CONTEXT", "UPDATE", "PARTIAL")
_MAX_NZ = 0xFFFFFFFF


def _search_return(reader: Reader, allowed: tuple[str, ...] = ESEARCH_OPTIONS) -> tuple[str, ...] | None:
    """RFC 4731 §3.1: ``RETURN (opt ...) SP`` before the search program; ``()`` is ALL.
    ``PARTIAL`` is followed in the tuple by its range, as written."""
    if reader.data[reader.pos : reader.pos + 7].upper() != b"RETURN ":
        return None
    reader.pos += 7
    options: list[str] = []
    words = reader.paren_list("atom")
    if "SAVE" in allowed and any(w.upper() == b"SAVE" for w in words):
        reader.search_save = True  # RFC 5182 §2.1: from here on, a failure empties ``$``
    i = 0
    while i < len(words):
        option = words[i].decode("ascii").upper()
        if option not in allowed or option in options:
            raise reader.error(replies.UNKNOWN_SEARCH_RETURN_OPTION)
        options.append(option)
        if option == "PARTIAL":  # RFC 5267 §4.4: PARTIAL SP partial-range
            i += 1
            if i == len(words):
                raise reader.error(replies.INVALID_PARTIAL_RANGE)
            options.append(words[i].decode("ascii"))
        i += 1
    reader.sp()
    if "PARTIAL" in options and "ALL" in options:  # RFC 5267 §4.4: one or the other
        raise reader.error(replies.PARTIAL_WITH_ALL)
    return tuple(options) if set(options) - {"CONTEXT"} else (*options, "ALL")  # a hint alone: ALL


def partial_range(text: str) -> tuple[int, int] | None:
    """RFC 5267 §4.4 ``m:n`` (either order), or RFC 9394's ``-m:-n`` (from the end): the
    range with the smaller distance from its end first; None when malformed."""
    first, sep, last = text.partition(":")
    values: list[int] = []
    for word in (first, last):
        digits = word[1:] if word.startswith("-") else word
        if not digits.isascii() or not digits.isdigit() or digits.startswith("0") or int(digits) > _MAX_NZ:
            return None
        values.append(int(word))
    if not sep or (values[0] < 0) != (values[1] < 0):
        return None
    low, high = sorted(values, key=abs)
    return low, high


def _search(uid: bool) -> Parser:
    def parse(reader: Reader, tag: str) -> c.Command:
        reader.sp()
        returns = _search_return(reader, SEARCH_OPTIONS)
        partial = None
        if returns is not None and "PARTIAL" in returns:
            at = returns.index("PARTIAL")
            partial = partial_range(returns[at + 1])
            if partial is None:
                raise reader.error(replies.INVALID_PARTIAL_RANGE)
            returns = returns[:at + 1] + returns[at + 2:]
        charset = parse_charset(reader)
        return c.Search(tag, uid, charset, parse_search_keys(reader), returns, partial)

    return parse


SORT_KEYS = ("ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO")


def _sort(uid: bool) -> Parser:
    """RFC 5256 §3: ``SORT [RETURN (...)] (criteria) charset search-program`` (RFC 5267 §3.2,
    RFC 5957 DISPLAYFROM / DISPLAYTO); the charset is required."""

    def parse(reader: Reader, tag: str) -> c.Command:
        reader.sp()
        returns = _search_return(reader)
        words = [w.decode("ascii").upper() for w in reader.paren_list("atom")]
        if not words:
            raise reader.error()
        keys: list[c.SortKey] = []
        reverse = False
        for word in words:
            if word == "REVERSE" and not reverse:
                reverse = True
                continue
            if word not in SORT_KEYS:
                raise reader.error(replies.UNKNOWN_SORT_KEY)
            keys.append(c.SortKey(word, reverse))
            reverse = False
        if reverse:
            raise reader.error(replies.UNKNOWN_SORT_KEY)
        reader.sp()
        charset = reader.astring().decode("ascii", "replace").upper()
        reader.sp()
        criteria = parse_search_keys(reader)  # a syntax error first (BAD), then the charset (NO)
        return c.Sort(tag, uid, tuple(keys), check_charset(charset), criteria, returns)

    return parse


THREAD_ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")  # RFC 5256 §3


def _thread(uid: bool) -> Parser:
    """RFC 5256 §3: ``THREAD algorithm charset search-program``."""

    def parse(reader: Reader, tag: str) -> c.Command:
        reader.sp()
        algorithm = reader.atom().upper()
        if algorithm not in THREAD_ALGORITHMS:
            raise reader.error(replies.UNKNOWN_THREAD_ALGORITHM)
        reader.sp()
        charset = reader.astring().decode("ascii", "replace").upper()
        reader.sp()
        criteria = parse_search_keys(reader)
        return c.Thread(tag, uid, algorithm, check_charset(charset), criteria)

    return parse


def _copy_move(cls: type[c.Copy] | type[c.Move], uid: bool) -> Parser:
    def parse(reader: Reader, tag: str) -> c.Command:
        seqset = _seqset(reader)
        reader.sp()
        return cls(tag, uid, seqset, reader.mailbox())

    return parse


# --- FETCH ------------------------------------------------------------------------------
def section_spec(text: bytes) -> t.Section:
    """A section-spec on its own, as in an IMAP URL's ``;SECTION=`` (RFC 5092 §3)."""
    reader = Reader(b"[" + text + b"]")
    section = _section(reader)
    reader.expect_end()
    return section


def _section(reader: Reader) -> t.Section:
    """RFC 3501 §9 section = "[" [section-spec] "]"."""
    reader.expect(b"[")
    if reader.peek_is(b"]"):
        reader.pos += 1
        return t.Section()
    words = reader.take(_SPEC_CHARS).decode("ascii").upper().split(".")
    parts: list[int] = []
    while words and words[0].isdigit():
        if words[0].startswith("0") or len(words[0]) > 9:
            raise reader.error(replies.INVALID_SECTION_PART)
        parts.append(int(words.pop(0)))
    text: t.SectionText | None = None
    if words:
        try:
            text = t.SectionText(".".join(words))
        except ValueError:
            raise reader.error(replies.INVALID_SECTION) from None
        if text is t.SectionText.MIME and not parts:
            raise reader.error(replies.MIME_NEEDS_PART)
    headers: tuple[str, ...] = ()
    if text in (t.SectionText.HEADER_FIELDS, t.SectionText.HEADER_FIELDS_NOT):
        reader.sp()
        names = reader.paren_list()
        if not names:
            raise reader.error(replies.EMPTY_HEADER_LIST)
        headers = tuple(n.decode("ascii", "replace").upper() for n in names)
    reader.expect(b"]")
    return t.Section(tuple(parts), text, headers)


def _partial(reader: Reader) -> tuple[int, int] | None:
    """``"<" number "." nz-number ">"`` (RFC 3501 §9), if present."""
    if not reader.peek_is(b"<"):
        return None
    reader.pos += 1
    origin = reader.number()
    reader.expect(b".")
    partial = (origin, reader.number(nonzero=True))
    reader.expect(b">")
    return partial


def _fetch_item(reader: Reader) -> t.FetchItem:
    name = reader.take(_NAME_CHARS).decode("ascii").upper()
    if name in ("BODY", "BODY.PEEK") and reader.peek_is(b"["):
        section = _section(reader)
        return t.FetchBody(section, _partial(reader), peek=name == "BODY.PEEK")
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE") and reader.peek_is(b"["):
        # RFC 3516 §6: section-binary = "[" [section-part] "]"; no partial after BINARY.SIZE.
        section = _section(reader)
        if section.text is not None:
            raise reader.error(replies.INVALID_SECTION)
        size = name == "BINARY.SIZE"
        partial = None if size else _partial(reader)
        return t.FetchBody(section, partial, peek=name != "BINARY", binary=True, size=size)
    if name == "PREVIEW" and reader.data[reader.pos : reader.pos + 7].upper() == b" (LAZY)":
        reader.pos += 7  # RFC 8970 §3: preview-mod; LAZY is the only one defined
        return t.FetchAttr.PREVIEW_LAZY
    try:
        return t.FetchAttr(name)
    except ValueError:
        raise reader.error(replies.UNKNOWN_FETCH_ITEM) from None


def fetch_items(reader: Reader) -> list[t.FetchItem]:
    """RFC 3501 §9 ``"ALL" / "FULL" / "FAST" / fetch-att / "(" fetch-att *(SP fetch-att) ")"``."""
    return _fetch_items(reader)


def _fetch_items(reader: Reader) -> list[t.FetchItem]:
    if reader.peek_is(b"("):
        reader.pos += 1
        items = [_fetch_item(reader)]
        while reader.maybe_sp():
            items.append(_fetch_item(reader))
        reader.expect(b")")
        return items
    save = reader.pos
    word = reader.take(_NAME_CHARS).decode("ascii").upper()
    if word in t.FETCH_MACROS and not reader.peek_is(b"["):
        return list(t.FETCH_MACROS[word])
    reader.pos = save
    return [_fetch_item(reader)]


def _modifier(reader: Reader, name: str) -> int:
    """RFC 4466 §2.4 modifier list with the single RFC 7162 modifier ``name``."""
    reader.sp()
    reader.expect(b"(")
    if reader.keyword() != name:
        raise reader.error(replies.UNKNOWN_MODIFIER)
    reader.sp()
    value = reader.number(maximum=MAX_NUMBER64)
    reader.expect(b")")
    return value


def _fetch(uid: bool) -> Parser:
    def parse(reader: Reader, tag: str) -> c.Command:
        seqset = _seqset(reader)
        reader.sp()
        items = _fetch_items(reader)
        changed_since, vanished = None, False
        if reader.peek_is(b" "):  # RFC 7162 §3.1.4 CHANGEDSINCE, §3.2.6 VANISHED
            changed_since, vanished = fetch_modifiers(reader)
            if vanished and not uid:
                raise reader.error(replies.VANISHED_NEEDS_CHANGEDSINCE)  # RFC 7162 §3.2.6: UID FETCH only
        extra = [t.FetchAttr.UID] if uid else []
        if changed_since is not None:
            extra.append(t.FetchAttr.MODSEQ)
        for item in extra:
            if item not in items:
                items.append(item)
        return c.Fetch(tag, uid, seqset, tuple(items), changed_since, vanished)

    return parse


def _store(uid: bool) -> Parser:
    """RFC 3501 §9 store-att-flags; RFC 7162 §3.1.3 UNCHANGEDSINCE comes before it."""

    def parse(reader: Reader, tag: str) -> c.Command:
        seqset = _seqset(reader)
        unchanged = None
        if reader.data.startswith(b" (", reader.pos):
            unchanged = _modifier(reader, "UNCHANGEDSINCE")
        reader.sp()
        mode = c.StoreMode.REPLACE
        if reader.peek_is(b"+") or reader.peek_is(b"-"):
            mode = c.StoreMode(chr(reader.peek()))
            reader.pos += 1
        word = reader.keyword()
        if word not in ("FLAGS", "FLAGS.SILENT"):
            raise reader.error(replies.INVALID_STORE_ITEM)
        reader.sp()
        return c.Store(tag, uid, seqset, mode, word == "FLAGS.SILENT", reader.flags(), unchanged)

    return parse


def _cancel_update(reader: Reader, tag: str) -> c.Command:
    """RFC 5267 §4.3: ``CANCELUPDATE 1*(SP tag-string)``; a tag-string is a string."""
    tags = []
    while reader.maybe_sp():
        tags.append(reader.string().decode("utf-8", "replace"))
    if not tags:
        raise reader.error()
    return c.CancelUpdate(tag, tuple(tags))


SELECTED_PARSERS: dict[str, Parser] = {
    "EXPUNGE": _expunge(False),
    "UID EXPUNGE": _expunge(True),
    "CANCELUPDATE": _cancel_update,
}
for _uid in (False, True):
    _prefix = "UID " if _uid else ""
    SELECTED_PARSERS[_prefix + "SEARCH"] = _search(_uid)
    SELECTED_PARSERS[_prefix + "SORT"] = _sort(_uid)
    SELECTED_PARSERS[_prefix + "THREAD"] = _thread(_uid)
    SELECTED_PARSERS[_prefix + "FETCH"] = _fetch(_uid)
    SELECTED_PARSERS[_prefix + "STORE"] = _store(_uid)
    SELECTED_PARSERS[_prefix + "COPY"] = _copy_move(c.Copy, _uid)
    SELECTED_PARSERS[_prefix + "MOVE"] = _copy_move(c.Move, _uid)
