"""LIST and LSUB (RFC 3501 §6.3.8-9) with CHILDREN (RFC 3348), SPECIAL-USE (RFC 6154) and
the RFC 5258 selection / return options those use."""

from __future__ import annotations

import re
from collections.abc import Sequence

from imap import command as c
from imap import encoder
from imap.backend import DELIMITER, FolderInfo
from imap.handlers_auth import canonical
from imap.outcome import Ok
from imap.session import Session

_DELIM = encoder.quoted(DELIMITER)


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


def _line(kind: bytes, attrs: list[str], name: str) -> bytes:
    return encoder.untagged(kind + b" " + encoder.flags(attrs) + b" " + _DELIM + b" " + encoder.mailbox(name))


async def list_(s: Session, cmd: c.List) -> Ok:
    if len(cmd.patterns) == 1 and cmd.patterns[0] == "" and not cmd.select_options:
        # RFC 3501 §6.3.8: the delimiter and the root of the reference.
        root = cmd.reference.split(DELIMITER)[0] + DELIMITER if DELIMITER in cmd.reference else ""
        await s.send(_line(b"LIST", ["\\Noselect"], root))
        return Ok("LIST completed")
    regexes = [pattern_regex(cmd.reference, p) for p in cmd.patterns]
    only_subscribed = "SUBSCRIBED" in cmd.select_options
    only_special = "SPECIAL-USE" in cmd.select_options
    show_subscribed = only_subscribed or "SUBSCRIBED" in cmd.return_options
    for info in await s.boxes.list_folders():
        if not _matches(info.name, regexes):
            continue
        if (only_subscribed and not info.subscribed) or (only_special and not info.special_use):
            continue
        await s.send(_line(b"LIST", _attributes(info, subscribed=show_subscribed), info.name))
    return Ok("LIST completed")


async def lsub(s: Session, cmd: c.Lsub) -> Ok:
    if cmd.pattern == "":
        await s.send(_line(b"LSUB", ["\\Noselect"], ""))
        return Ok("LSUB completed")
    regex = pattern_regex(cmd.reference, cmd.pattern)
    for info in await s.boxes.list_folders():
        if info.subscribed and regex.match(info.name):
            attrs = [] if info.selectable else ["\\Noselect"]
            await s.send(_line(b"LSUB", attrs, info.name))
    return Ok("LSUB completed")
