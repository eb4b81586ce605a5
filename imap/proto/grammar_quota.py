"""QUOTA command grammar (RFC 9208 §7): GETQUOTA, GETQUOTAROOT, SETQUOTA.

``quota-root-name = astring``; ``setquota-resource = resource-name SP resource-limit``,
``resource-name = atom``, ``resource-limit = number64``.
"""

from __future__ import annotations

from collections.abc import Callable

from imap.proto import commands as c
from imap.proto.reader import MAX_NUMBER64, Reader

Parser = Callable[[Reader, str], c.Command]


def _root(reader: Reader) -> str:
    reader.sp()
    return reader.astring().decode("utf-8", "replace")


def _getquota(reader: Reader, tag: str) -> c.Command:
    return c.GetQuota(tag, _root(reader))


def _getquotaroot(reader: Reader, tag: str) -> c.Command:
    reader.sp()
    return c.GetQuotaRoot(tag, reader.mailbox())


def _setquota(reader: Reader, tag: str) -> c.Command:
    """``setquota-list = "(" [setquota-resource *(SP setquota-resource)] ")"``."""
    root = _root(reader)
    reader.sp()
    reader.expect(b"(")
    limits: list[tuple[str, int]] = []
    while not reader.peek_is(b")"):
        if limits:
            reader.sp()
        resource = reader.atom().upper()
        reader.sp()
        limits.append((resource, reader.number(maximum=MAX_NUMBER64)))
    reader.expect(b")")
    return c.SetQuota(tag, root, tuple(limits))


QUOTA_PARSERS: dict[str, Parser] = {
    "GETQUOTA": _getquota,
    "GETQUOTAROOT": _getquotaroot,
    "SETQUOTA": _setquota,
}
