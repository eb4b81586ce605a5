"""Authenticated state, the commands that manage mailboxes: CREATE, DELETE, RENAME,
SUBSCRIBE, UNSUBSCRIBE (RFC 3501 §6.3.3-7), and LIST and LSUB (§6.3.8-9) with CHILDREN
(RFC 3348), SPECIAL-USE (RFC 6154), LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import replace

from imap.backend import DELIMITER, FolderInfo
from imap.handlers.status_items import mailbox_id, status_line
from imap.proto import commands as c
from imap.proto import encoder, replies
from imap.proto.errors import BadCommand, CommandFailed
from imap.proto.replies import Reply
from imap.session import Session

_DELIM = encoder.quoted(DELIMITER)


def canonical(name: str) -> str:
    """RFC 3501 §5.1: INBOX is case-insensitive; a trailing delimiter is not part of a name."""
    if name.upper() == "INBOX":
        return "INBOX"
    if name.upper().startswith("INBOX" + DELIMITER):
        name = "INBOX" + name[5:]
    return name


def _checked_name(name: str) -> str:
    name = canonical(name.rstrip(DELIMITER))
    parts = name.split(DELIMITER)
    if not name or any(not p for p in parts) or "*" in name or "%" in name or len(name) > 500:
        raise CommandFailed(replies.MAILBOX_NAME_REFUSED)
    # RFC 9051 §5.1, §6.3.4, RFC 6855 §3: Net-Unicode (RFC 5198: NFC) without control characters
    # or line and paragraph separators; a name that is not is refused, not converted.
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch in "\u2028\u2029" for ch in name) \
            or unicodedata.normalize("NFC", name) != name:
        raise CommandFailed(replies.MAILBOX_NAME_REFUSED)
    return name


async def create(s: Session, cmd: c.Create) -> Reply:
    name = _checked_name(cmd.mailbox)
    await s.boxes.create_folder(name, cmd.special_use)
    status = await s.boxes.folder_status(name)
    return replies.CREATE_COMPLETED.with_arg(mailbox_id(status).decode("ascii"))  # RFC 8474 §4.1


async def delete(s: Session, cmd: c.Delete) -> Reply:
    name = canonical(cmd.mailbox)
    if name == "INBOX":
        raise CommandFailed(replies.INBOX_NOT_DELETABLE)  # RFC 3501 §6.3.4
    await s.boxes.delete_folder(name)
    return replies.DELETE_COMPLETED


async def rename(s: Session, cmd: c.Rename) -> Reply:
    await s.boxes.rename_folder(canonical(cmd.mailbox), _checked_name(cmd.new_name))
    return replies.RENAME_COMPLETED


async def subscribe(s: Session, cmd: c.Subscribe) -> Reply:
    await s.boxes.set_subscribed(canonical(cmd.mailbox), True)
    return replies.SUBSCRIBE_COMPLETED


async def unsubscribe(s: Session, cmd: c.Unsubscribe) -> Reply:
    await s.boxes.set_subscribed(canonical(cmd.mailbox), False)
    return replies.UNSUBSCRIBE_COMPLETED


def pattern_regex(reference: str, pattern: str) -> re.Pattern[str]:
    """``*`` matches anything, ``%`` anything but the delimiter (RFC 3501 §6.3.8)."""
    full = canonical(reference + pattern) if not pattern.startswith(DELIMITER) else pattern
    out = []
    for ch in full:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append(f"[^{re.escape(DELIMITER)}]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def _matches(folder: str, regexes: Sequence[re.Pattern[str]]) -> bool:
    return any(r.match(folder) for r in regexes)


def _attributes(info: FolderInfo, *, subscribed: bool) -> list[str]:
    attrs: list[str] = []
    if not info.selectable:
        attrs.append("\\Noselect")
    attrs.append("\\HasChildren" if info.has_children else "\\HasNoChildren")  # RFC 3348 §4
    attrs += info.special_use  # RFC 6154 §2: may always be returned
    if subscribed and info.subscribed:
        attrs.append("\\Subscribed")  # RFC 5258 §3.4
    return attrs


def _line(kind: bytes, attrs: list[str], name: str, extended: bytes = b"", *, utf8: bool = False) -> bytes:
    return encoder.untagged(kind + b" " + encoder.flags(attrs) + b" " + _DELIM + b" "
                            + encoder.mailbox(name, utf8=utf8) + extended)


async def selected_list_line(s: Session, name: str) -> bytes:
    """The LIST response IMAP4rev2's SELECT sends for the mailbox, its attributes accurate
    (RFC 9051 §6.3.2), in the session's spelling of names."""
    info = next((f for f in await s.boxes.list_folders() if f.name == name), None)
    attrs = [] if info is None else _attributes(info, subscribed=False)
    return _line(b"LIST", attrs, name, utf8=s.enabled.utf8)


SELECT_OPTIONS = {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}  # RFC 5258 §3, RFC 6154 §3
RETURN_OPTIONS = {"SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"}  # RFC 5258 §3, RFC 6154 §2, RFC 5819
_CHILDINFO = b' ("CHILDINFO" ("SUBSCRIBED"))'  # RFC 5258 §3.5


def _check_options(cmd: c.List) -> None:
    """RFC 5258 §3: an unknown option is a BAD; so is RECURSIVEMATCH with no other selection
    option than REMOTE."""
    if not set(cmd.select_options) <= SELECT_OPTIONS or not set(cmd.return_options) <= RETURN_OPTIONS:
        raise BadCommand(replies.UNKNOWN_LIST_OPTION)
    if "RECURSIVEMATCH" in cmd.select_options and not set(cmd.select_options) - {"RECURSIVEMATCH", "REMOTE"}:
        raise BadCommand(replies.UNKNOWN_LIST_OPTION)


async def list_(s: Session, cmd: c.List) -> Reply:
    _check_options(cmd)
    if len(cmd.patterns) == 1 and cmd.patterns[0] == "" and not cmd.select_options:
        # RFC 3501 §6.3.8: the delimiter and the root of the reference.
        root = cmd.reference.split(DELIMITER)[0] + DELIMITER if DELIMITER in cmd.reference else ""
        await s.send(_line(b"LIST", ["\\Noselect"], root, utf8=s.enabled.utf8))
        return replies.LIST_COMPLETED
    regexes = [pattern_regex(cmd.reference, p) for p in cmd.patterns]
    only_subscribed = "SUBSCRIBED" in cmd.select_options
    only_special = "SPECIAL-USE" in cmd.select_options
    show_subscribed = only_subscribed or "SUBSCRIBED" in cmd.return_options
    folders = await s.boxes.list_folders()
    subscribed = set(await s.boxes.list_subscriptions()) if show_subscribed else set()
    infos = {info.name: replace(info, subscribed=info.name in subscribed) if show_subscribed else info
             for info in folders}
    if only_subscribed:  # RFC 5258 §3.1: a subscribed name without a mailbox is \NonExistent
        infos |= {name: FolderInfo(name, True, selectable=False) for name in subscribed - set(infos)}

    def selected(info: FolderInfo) -> bool:
        return not ((only_subscribed and not info.subscribed) or (only_special and not info.special_use))

    # RFC 5258 §3.5 RECURSIVEMATCH: a matching name gets CHILDINFO when a descendant satisfies
    # the selection but does not match the patterns itself.
    childinfo: set[str] = set()
    if "RECURSIVEMATCH" in cmd.select_options:
        for info in infos.values():
            if selected(info) and not _matches(info.name, regexes):
                parts = info.name.split(DELIMITER)
                childinfo |= {DELIMITER.join(parts[:i]) for i in range(1, len(parts))}
    for name in sorted(infos, key=lambda n: (n != "INBOX", n)):
        info = infos[name]
        if not _matches(name, regexes) or not (selected(info) or name in childinfo):
            continue
        attrs = _attributes(info, subscribed=show_subscribed) if name in {f.name for f in folders} else \
            ["\\Subscribed", "\\NonExistent"]
        if name in childinfo and not selected(info):
            attrs = [a for a in attrs if a != "\\Subscribed"]
        await s.send(_line(b"LIST", attrs, name, _CHILDINFO if name in childinfo else b"", utf8=s.enabled.utf8))
        if cmd.status_items and info.selectable and "\\NonExistent" not in attrs:
            await _list_status(s, name, cmd.status_items)
    return replies.LIST_COMPLETED


async def _list_status(s: Session, name: str, items: tuple[c.StatusItem, ...]) -> None:
    """RFC 5819 §2: a ``* STATUS`` after the LIST of each selectable mailbox; one that went away
    meanwhile gets none (a failed STATUS is not reported)."""
    try:
        status = await s.boxes.folder_status(name)
    except CommandFailed:
        return
    await s.send(status_line(name, status, items, s.config.appendlimit, utf8=s.enabled.utf8))


async def lsub(s: Session, cmd: c.Lsub) -> Reply:
    """RFC 3501 §6.3.9: the subscribed names matching the pattern, whether a mailbox has them
    or not (§6.3.6), with ``()`` as Dovecot answers; and, where ``%`` stops above a subscribed
    name, its unsubscribed parent flagged ``\\Noselect``."""
    if cmd.pattern is None:  # not modified UTF-7: matches no mailbox (RFC 3501 §5.1.3)
        return replies.LSUB_COMPLETED
    if cmd.pattern == "":
        await s.send(_line(b"LSUB", ["\\Noselect"], "", utf8=s.enabled.utf8))
        return replies.LSUB_COMPLETED
    regex = pattern_regex(cmd.reference, cmd.pattern)
    subscribed = set(await s.boxes.list_subscriptions())
    found: dict[str, list[str]] = {name: [] for name in subscribed if regex.match(name)}
    for name in subscribed - set(found):
        parts = name.split(DELIMITER)
        for depth in range(len(parts) - 1, 0, -1):
            parent = DELIMITER.join(parts[:depth])
            if regex.match(parent):
                found.setdefault(parent, ["\\Noselect"])
                break
    for name in sorted(found, key=lambda n: (n != "INBOX", n)):
        await s.send(_line(b"LSUB", found[name], name, utf8=s.enabled.utf8))
    return replies.LSUB_COMPLETED
