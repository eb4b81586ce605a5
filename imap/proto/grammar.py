"""Command grammar: tag, command name, then one parse function per command.

Split by command group (pymap ``command/{any,nonauth,auth,select}``): this module holds the
dispatcher and the commands valid in any / not-authenticated / authenticated states
(RFC 3501 §6.1-6.3); :mod:`imap.proto.grammar_select` has the selected-state commands and
:mod:`imap.proto.grammar_search` the SEARCH keys.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from imap.proto import commands as c
from imap.proto import replies
from imap.proto.dates import parse_date_time
from imap.proto.errors import BadCommand, ImapError
from imap.proto.grammar_notify import parse_notify
from imap.proto.grammar_qresync import select_params
from imap.proto.grammar_quota import QUOTA_PARSERS
from imap.proto.grammar_select import SELECTED_PARSERS
from imap.proto.reader import Reader

Parser = Callable[[Reader, str], c.Command]


def parse_command(data: bytes, *, utf8: bool = False) -> c.Command:
    """Parse one framed command (no final CRLF). Errors carry the tag when it was read.
    ``utf8``: mailbox names are UTF-8, not modified UTF-7 (RFC 6855 §3, RFC 9051 §5.1)."""
    reader = Reader(data, utf8=utf8)
    tag: str | None = None
    try:
        tag = reader.tag()
        reader.sp()
        name = reader.keyword()
        if name == "UID":
            reader.sp()
            name = "UID " + reader.keyword()
        parser = PARSERS.get(name)
        if parser is None:
            raise BadCommand(replies.UNKNOWN_COMMAND, detail=f"unknown command {name[:40]!r}")
        command = parser(reader, tag)
        reader.expect_end()
        if reader.refusal is not None:
            raise reader.refusal
        return command
    except ImapError as exc:
        exc.clears_search_result = reader.search_save
        raise exc.with_tag(tag) from None


def tag_of(data: bytes) -> str | None:
    """The tag at the start of a (possibly incomplete) command line, if it is valid."""
    reader = Reader(data)
    try:
        tag = reader.tag()
    except BadCommand:
        return None
    return tag if reader.peek_is(b" ") or reader.at_end() else None


def _simple(cls: type[c.Command]) -> Parser:
    def parse(reader: Reader, tag: str) -> c.Command:
        return cls(tag)

    return parse


# --- any state / not authenticated ----------------------------------------------------
def _id(reader: Reader, tag: str) -> c.Command:
    """RFC 2971 §3.3: ``ID ("name" "value" ...)`` or ``ID NIL``; at most 30 pairs."""
    reader.sp()
    if reader.data[reader.pos : reader.pos + 3].upper() == b"NIL":
        reader.pos += 3
        return c.Id(tag, None)
    reader.expect(b"(")
    pairs: list[tuple[str, str | None]] = []
    while not reader.peek_is(b")"):
        if pairs:
            reader.sp()
        key = reader.string()
        reader.sp()
        value = reader.nstring()
        pairs.append((key.decode("utf-8", "replace"), None if value is None else value.decode("utf-8", "replace")))
        if len(pairs) > 30:
            raise reader.error(replies.TOO_MANY_ID_PARAMETERS)
    reader.pos += 1
    return c.Id(tag, tuple(pairs))


def _authenticate(reader: Reader, tag: str) -> c.Command:
    """RFC 3501 §6.2.2; RFC 4959 initial response (``=`` for an empty one)."""
    reader.sp()
    mechanism = reader.keyword()
    initial: bytes | None = None
    if reader.maybe_sp():
        raw = reader.take(frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="))
        if raw == b"=":
            initial = b""
        else:
            try:
                initial = base64.b64decode(raw, validate=True)
            except binascii.Error:
                raise reader.error(replies.INVALID_BASE64) from None
    return c.Authenticate(tag, mechanism, initial)


def _login(reader: Reader, tag: str) -> c.Command:
    reader.sp()
    user = reader.text_astring()
    reader.sp()
    password = reader.text_astring()
    return c.Login(tag, user, password)


# --- authenticated ---------------------------------------------------------------------
def _select(cls: type[c.Select]) -> Parser:
    def parse(reader: Reader, tag: str) -> c.Command:
        reader.sp()
        mailbox = reader.mailbox()
        condstore, qresync = False, None
        if reader.maybe_sp():  # RFC 4466 §2.1 select-params; RFC 7162 §3.1.8 CONDSTORE, §3.2.5 QRESYNC
            condstore, qresync = select_params(reader)
        return cls(tag, mailbox, condstore, qresync)

    return parse


def _mailbox_cmd(cls: type[c.Delete] | type[c.Subscribe] | type[c.Unsubscribe]) -> Parser:
    def parse(reader: Reader, tag: str) -> c.Command:
        reader.sp()
        return cls(tag, reader.mailbox())

    return parse


def _create(reader: Reader, tag: str) -> c.Command:
    reader.sp()
    mailbox = reader.mailbox()
    uses: tuple[str, ...] = ()
    if reader.maybe_sp():  # RFC 6154 §3: CREATE name (USE (\Drafts))
        reader.expect(b"(")
        if reader.keyword() != "USE":
            raise reader.error(replies.UNKNOWN_CREATE_PARAMETER)
        reader.sp()
        uses = reader.flag_list()
        reader.expect(b")")
    return c.Create(tag, mailbox, uses)


def _rename(reader: Reader, tag: str) -> c.Command:
    reader.sp()
    old = reader.mailbox()
    reader.sp()
    return c.Rename(tag, old, reader.mailbox())


def _options(reader: Reader) -> tuple[str, ...]:
    return tuple(o.decode("ascii").upper() for o in reader.paren_list("atom"))


def _list(reader: Reader, tag: str) -> c.Command:
    """RFC 3501 §6.3.8; RFC 5258 §3 list-select-opts / list-return-opts (RFC 6154 §2)."""
    reader.sp()
    select: tuple[str, ...] = ()
    if reader.peek_is(b"("):
        select = _options(reader)
        reader.sp()
    reference = reader.reference()
    reader.sp()
    if reader.peek_is(b"("):
        reader.pos += 1
        patterns = [reader.list_mailbox()]
        while reader.maybe_sp():
            patterns.append(reader.list_mailbox())
        reader.expect(b")")
    else:
        patterns = [reader.list_mailbox()]
    if reference is None:  # not modified UTF-7: nothing can match under it
        reference, patterns = "", []
    returns: tuple[str, ...] = ()
    status: tuple[c.StatusItem, ...] = ()
    if reader.maybe_sp():
        if reader.keyword() != "RETURN":
            raise reader.error()
        reader.sp()
        returns, status = _return_options(reader)
    return c.List(tag, reference, tuple(p for p in patterns if p is not None), select, returns, status)


def _return_options(reader: Reader) -> tuple[tuple[str, ...], tuple[c.StatusItem, ...]]:
    """RFC 5258 §6 ``"(" [return-option *(SP return-option)] ")"``, where RFC 5819 adds
    ``STATUS SP "(" status-att *(SP status-att) ")"``."""
    reader.expect(b"(")
    options: list[str] = []
    status: tuple[c.StatusItem, ...] = ()
    while not reader.peek_is(b")"):
        if options:
            reader.sp()
        option = reader.keyword()
        if option == "STATUS":
            reader.sp()
            status = _status_items(reader)
        options.append(option)
    reader.pos += 1
    return tuple(options), status


def _status_items(reader: Reader) -> tuple[c.StatusItem, ...]:
    try:
        items = tuple(c.StatusItem(i.decode("ascii").upper()) for i in reader.paren_list("atom"))
    except ValueError:
        raise reader.error(replies.UNKNOWN_STATUS_ITEM) from None
    if not items:
        raise reader.error(replies.EMPTY_STATUS_ITEMS)
    return items


def _lsub(reader: Reader, tag: str) -> c.Command:
    reader.sp()
    reference = reader.reference()
    reader.sp()
    pattern = reader.list_mailbox()
    return c.Lsub(tag, reference or "", pattern if reference is not None else None)


def _status(reader: Reader, tag: str) -> c.Command:
    reader.sp()
    mailbox = reader.mailbox()
    reader.sp()
    return c.Status(tag, mailbox, _status_items(reader))


def _append(reader: Reader, tag: str) -> c.Command:
    """RFC 3501 §6.3.11 with MULTIAPPEND (RFC 3502 §6), CATENATE (RFC 4469 §5), BINARY's
    literal8 (RFC 3516 §4.2) and, once UTF-8 is enabled, RFC 6855 §4's ``UTF8 (literal8)``:
    ``mailbox 1*append-message``, each ``[SP flag-list] [SP date-time] SP append-data``."""
    reader.sp()
    mailbox = reader.mailbox()
    messages = [_append_message(reader)]
    while reader.maybe_sp():
        messages.append(_append_message(reader, first=False))
    first = messages[0]
    return c.Append(tag, mailbox, first.flags, first.date_time, first.message, first.catenate, tuple(messages[1:]),
                    first.binary)


def _append_message(reader: Reader, *, first: bool = True) -> c.AppendMessage:
    if first:
        reader.sp()
    flags: tuple[str, ...] = ()
    date_time = None
    if reader.peek_is(b"("):
        flags = reader.flag_list()
        reader.sp()
    if reader.peek_is(b'"'):
        date_time = parse_date_time(reader.quoted().decode("ascii", "replace"))
        reader.sp()
    if reader.peek_is(b"{"):
        return c.AppendMessage(flags, date_time, reader.literal(allow_nul=True))
    if reader.peek_is(b"~{"):  # RFC 3516 §4.2: literal8, binary content (NUL allowed)
        reader.pos += 1
        return c.AppendMessage(flags, date_time, reader.literal(allow_nul=True), binary=True)
    if reader.utf8 and reader.data[reader.pos : reader.pos + 6].upper() == b"UTF8 (":
        # RFC 6855 §4 ``"UTF8" SP "(" literal8 ")"``, once UTF-8 is enabled: the message as is.
        reader.pos += 6
        reader.expect(b"~")
        message = reader.literal(allow_nul=True)
        reader.expect(b")")
        return c.AppendMessage(flags, date_time, message)
    if reader.data[reader.pos : reader.pos + 9].upper() == b"CATENATE ":
        reader.pos += 9
        return c.AppendMessage(flags, date_time, catenate=_catenate_parts(reader))
    raise reader.error(replies.APPEND_NEEDS_LITERAL)


def _catenate_parts(reader: Reader) -> tuple[c.CatenatePart, ...]:
    """RFC 4469 §5: ``"(" cat-part *(SP cat-part) ")"``, cat-part = ``TEXT SP literal`` / ``URL SP astring``."""
    reader.expect(b"(")
    parts: list[c.CatenatePart] = []
    while True:
        kind = reader.keyword()
        reader.sp()
        if kind == "TEXT":
            parts.append(c.CatenatePart(text=reader.literal(allow_nul=True)))
        elif kind == "URL":
            parts.append(c.CatenatePart(url=reader.astring().decode("utf-8", "replace")))
        else:
            raise reader.error()
        if reader.peek_is(b")"):
            reader.pos += 1
            return tuple(parts)
        reader.sp()


def _compress(reader: Reader, tag: str) -> c.Command:
    """RFC 4978 §3: ``COMPRESS SP algorithm``."""
    reader.sp()
    return c.Compress(tag, reader.keyword())


def _enable(reader: Reader, tag: str) -> c.Command:
    caps = []
    while reader.maybe_sp():
        caps.append(reader.keyword())
    if not caps:
        raise reader.error(replies.ENABLE_NEEDS_CAPABILITY)
    return c.Enable(tag, tuple(caps))


PARSERS: dict[str, Parser] = {
    "CAPABILITY": _simple(c.Capability),
    "NOOP": _simple(c.Noop),
    "LOGOUT": _simple(c.Logout),
    "ID": _id,
    "STARTTLS": _simple(c.StartTls),
    "AUTHENTICATE": _authenticate,
    "LOGIN": _login,
    "SELECT": _select(c.Select),
    "EXAMINE": _select(c.Examine),
    "CREATE": _create,
    "DELETE": _mailbox_cmd(c.Delete),
    "RENAME": _rename,
    "SUBSCRIBE": _mailbox_cmd(c.Subscribe),
    "UNSUBSCRIBE": _mailbox_cmd(c.Unsubscribe),
    "LIST": _list,
    "LSUB": _lsub,
    "STATUS": _status,
    "APPEND": _append,
    "ENABLE": _enable,
    "NAMESPACE": _simple(c.Namespace),
    "IDLE": _simple(c.Idle),
    "NOTIFY": parse_notify,  # RFC 5465
    "COMPRESS": _compress,
    "CHECK": _simple(c.Check),
    "CLOSE": _simple(c.Close),
    "UNSELECT": _simple(c.Unselect),
    **SELECTED_PARSERS,
    **QUOTA_PARSERS,
}
