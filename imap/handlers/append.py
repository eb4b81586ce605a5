"""APPEND (RFC 3501 §6.3.11) with MULTIAPPEND (RFC 3502), CATENATE (RFC 4469) and BINARY's
literal8 (RFC 3516 §4.2: a ``binary`` part is stored in base64; BINARY[...] decodes it back).

Every message of a command is assembled and checked before anything is stored; several
messages go to :meth:`imap.backend.Mailboxes.append_many`, one transaction, so a MULTIAPPEND
adds all its messages or none (RFC 3502 §6.3.11). A CATENATE ``URL`` part names a message of
the same user by a relative IMAP URL (RFC 5092): ``/mailbox[;UIDVALIDITY=n]/;UID=n
[/;SECTION=s][/;PARTIAL=o[.l]]``; one that does not resolve fails the command with
``NO [BADURL url]`` (RFC 4469 §6).
"""

from __future__ import annotations

import re
import urllib.parse

from imap.backend import AppendManyResult, MailboxNotFound, NewMessage
from imap.handlers.mailboxes import canonical
from imap.message import mime, transfer
from imap.proto import commands as c
from imap.proto import replies
from imap.proto.command_types import Section
from imap.proto.errors import BadCommand, CommandFailed, ImapError
from imap.proto.flags import normalise_flags
from imap.proto.grammar_select import section_spec
from imap.proto.replies import Reply
from imap.proto.seqset import format_uids
from imap.session import Session

# RFC 5092 §11 (the relative path form of imapurl, with the iuid / isection / ipartial parts).
_URL = re.compile(
    r"^/(?P<mailbox>[^;/?#]*(?:/[^;/?#]+)*)(?:;UIDVALIDITY=(?P<uidvalidity>[1-9][0-9]{0,9}))?"
    r"/;UID=(?P<uid>[1-9][0-9]{0,9})(?:/;SECTION=(?P<section>[^/?#]+))?"
    r"(?:/;PARTIAL=(?P<origin>[0-9]{1,10})(?:\.(?P<length>[1-9][0-9]{0,9}))?)?$",
    re.IGNORECASE,
)


_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


async def append(s: Session, cmd: c.Append) -> Reply:
    name = canonical(cmd.mailbox)
    try:
        if any(m.catenate is not None for m in cmd.messages):
            await s.boxes.folder_status(name)  # RFC 4469 §5: TRYCREATE comes before any BADURL
        items = [await _assemble(s, m) for m in cmd.messages]
        if len(items) == 1:
            one = items[0]
            result = await s.boxes.append(name, one.message, one.flags, one.internal_date)
            return replies.APPEND_COMPLETED.with_arg(f"{result.uidvalidity} {result.uid}")  # RFC 4315 §3
        many: AppendManyResult = await s.boxes.append_many(name, items)
    except MailboxNotFound:
        raise CommandFailed(replies.TRYCREATE) from None  # RFC 3501 §6.3.11
    # RFC 4315 §3 with RFC 3502: APPENDUID uidvalidity uid-set, in the order of the messages.
    return replies.APPEND_COMPLETED.with_arg(f"{many.uidvalidity} {format_uids(list(many.uids))}")


async def _assemble(s: Session, message: c.AppendMessage) -> NewMessage:
    raw = message.message
    if message.catenate is not None:
        chunks = [part.text if part.url is None else await _resolve(s, part.url) for part in message.catenate]
        raw = b"".join(chunks)
    if message.binary:
        raw = transfer.base64_binary_parts(raw)  # RFC 3516 §4.2; a NUL left elsewhere is refused below
    if len(raw) > s.config.appendlimit:
        raise CommandFailed(replies.MESSAGE_TOO_LARGE)  # RFC 7889; RFC 4469 §5 for the whole
    if b"\x00" in raw:
        # RFC 3501 §4.3: a (non-binary) literal carries no NUL; such a message cannot be
        # stored (BODY[] could not return it, and it could smuggle lines to a later reader).
        raise CommandFailed(replies.NUL_IN_MESSAGE)
    if not s.enabled.utf8 and not header_of(raw).isascii():
        raise CommandFailed(replies.EIGHT_BIT_HEADER)  # RFC 6855 §4: needs ENABLE UTF8=ACCEPT
    return NewMessage(raw, tuple(normalise_flags(message.flags)), message.date_time)


def header_of(raw: bytes) -> bytes:
    """The message's header section (RFC 5322 §2.1): up to the first empty line."""
    if raw.startswith((b"\r\n", b"\n")):
        return b""
    blank = _BLANK_LINE.search(raw)
    return raw if blank is None else raw[: blank.start()]


async def _resolve(s: Session, url: str) -> bytes:
    """The octets a CATENATE URL names (RFC 4469 §5), or ``NO [BADURL url]``."""
    bad = replies.BAD_URL.with_arg(url.replace("]", "%5D"))
    match = _URL.match(url)
    if match is None:
        raise CommandFailed(bad)
    try:
        name = canonical(urllib.parse.unquote(match["mailbox"], errors="strict"))
        section = _section(match["section"])
        status = await s.boxes.folder_status(name)
        if match["uidvalidity"] is not None and int(match["uidvalidity"]) != status.uidvalidity:
            raise CommandFailed(bad)
        raw = await s.boxes.fetch_raw(name, int(match["uid"]))
    except (ImapError, UnicodeDecodeError):
        raise CommandFailed(bad) from None
    if raw is None:
        raise CommandFailed(bad)
    data = mime.section(mime.parse(raw), section)
    if match["origin"] is not None:
        origin = int(match["origin"])
        end = len(data) if match["length"] is None else origin + int(match["length"])
        data = data[origin:end]
    return data


def _section(text: str | None) -> Section:
    if text is None:
        return Section()
    try:
        return section_spec(urllib.parse.unquote(text).encode("ascii"))
    except (BadCommand, UnicodeEncodeError):
        raise CommandFailed(replies.BAD_URL) from None
