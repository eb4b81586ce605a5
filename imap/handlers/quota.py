"""QUOTA (RFC 9208): GETQUOTA, GETQUOTAROOT, and SETQUOTA refused.

Quotas are limits an administrator sets (the gateway's own tools); the client reads them.
No ``QUOTASET`` capability is advertised, and SETQUOTA answers ``NO [NOPERM]`` after its
syntax was checked (§4.1.3). A command that would go over a limit (APPEND, COPY) fails in
the store with ``NO [OVERQUOTA]`` (§4.3, :class:`imap.backend.OverQuota`).
"""

from __future__ import annotations

from imap.backend import QuotaRoot
from imap.handlers.mailboxes import canonical
from imap.proto import commands as c
from imap.proto import encoder, replies
from imap.proto.errors import CommandFailed
from imap.proto.replies import Reply
from imap.session import Session


def quota_line(root: QuotaRoot) -> bytes:
    """``* QUOTA root (STORAGE usage limit MESSAGE usage limit)`` (RFC 9208 §4.1.1, §7)."""
    resources = b" ".join(b"%s %d %d" % (r.name.encode("ascii"), r.usage, r.limit) for r in root.resources)
    return encoder.untagged(b"QUOTA", encoder.astring(root.name) if root.name else b'""', b"(" + resources + b")")


async def getquota(s: Session, cmd: c.GetQuota) -> Reply:
    root = await s.boxes.quota(cmd.root)
    if root is None:
        raise CommandFailed(replies.NO_SUCH_QUOTA_ROOT)
    await s.send(quota_line(root))
    return replies.GETQUOTA_COMPLETED


async def getquotaroot(s: Session, cmd: c.GetQuotaRoot) -> Reply:
    """``* QUOTAROOT mailbox root...`` then one ``* QUOTA`` per root (RFC 9208 §4.1.2)."""
    name = canonical(cmd.mailbox)
    roots = await s.boxes.quota_roots(name)
    names = [encoder.astring(r.name) if r.name else b'""' for r in roots]
    await s.send(encoder.untagged(b"QUOTAROOT", encoder.mailbox(name), *names))
    for root in roots:
        await s.send(quota_line(root))
    return replies.GETQUOTAROOT_COMPLETED


async def setquota(s: Session, cmd: c.SetQuota) -> Reply:
    raise CommandFailed(replies.QUOTA_SET_BY_ADMINS)
