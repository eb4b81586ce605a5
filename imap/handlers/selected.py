"""Selected state: CHECK, CLOSE, UNSELECT, EXPUNGE, STORE, COPY, MOVE and their UID forms
(RFC 3501 §6.4, RFC 4315 UIDPLUS, RFC 6851 MOVE, RFC 3691 UNSELECT, RFC 7162 CONDSTORE).
FETCH is in :mod:`imap.handlers.fetch`, SEARCH in :mod:`imap.handlers.search`."""

from __future__ import annotations

from imap.backend import CopyResult, MailboxNotFound
from imap.handlers import qresync
from imap.handlers.mailboxes import canonical
from imap.proto import commands as c
from imap.proto import replies
from imap.proto.errors import CommandFailed
from imap.proto.flags import normalise_flags
from imap.proto.replies import Reply
from imap.proto.seqset import format_uids
from imap.session import Session, require_writable


async def check(s: Session, cmd: c.Check) -> Reply:
    return replies.CHECK_COMPLETED  # RFC 3501 §6.4.1: every write is already durable


async def close(s: Session, cmd: c.Close) -> Reply:
    view = s.selected
    if not view.read_only:
        await s.boxes.expunge(view.name)  # RFC 3501 §6.4.2: silently, no EXPUNGE responses
    return replies.CLOSE_COMPLETED


async def unselect(s: Session, cmd: c.Unselect) -> Reply:
    return replies.UNSELECT_COMPLETED  # RFC 3691: like CLOSE without expunging


async def expunge(s: Session, cmd: c.Expunge) -> Reply:
    view = require_writable(s)
    uids: list[int] | None = None
    if cmd.uid and cmd.sequence_set is not None:  # RFC 4315 §2.1 UID EXPUNGE
        uids = [u for _, u in view.resolve(cmd.sequence_set, uid=True)]
        if not uids:
            return replies.EXPUNGE_COMPLETED
    removed = await s.boxes.expunge(view.name, uids)
    for line in view.expunged(removed):
        await s.send(line)
    if s.qresync and removed:  # the mod-sequence of the expunge (RFC 7162 §3.2.10, as Dovecot)
        return await qresync.expunged_ok(s, view.name)
    return replies.EXPUNGE_COMPLETED


async def store(s: Session, cmd: c.Store) -> Reply:
    view = require_writable(s)
    pairs = view.resolve(cmd.sequence_set, uid=cmd.uid)
    if cmd.unchanged_since is not None:
        await s.enable_condstore()  # RFC 7162 §3.1: using UNCHANGEDSINCE enables CONDSTORE
    result = await s.boxes.store_flags(
        view.name, [u for _, u in pairs], cmd.mode, normalise_flags(cmd.flags),
        unchanged_since=cmd.unchanged_since,
    )  # fmt: skip
    changed = {m.uid for m in result.updated}
    for line in view.new_keywords(result.updated):  # RFC 3501 §7.2.6: FLAGS before the FETCHes
        await s.send(line)
    for updated in result.updated:
        view.update(updated)
    conflicts = set(result.conflicts)
    for _, uid in pairs:
        meta = view.meta.get(uid)
        if meta is None or uid in conflicts or uid in view.pending_expunge:
            continue
        if not cmd.silent or (s.condstore and uid in changed):  # RFC 7162 §3.1.3: MODSEQ even if silent
            await s.send(view.flags_response(meta, condstore=s.condstore, uid=cmd.uid))
    if conflicts:
        numbers = sorted(conflicts) if cmd.uid else sorted(view.seq_of(u) or 0 for u in conflicts)
        return replies.STORE_MODIFIED.with_arg(format_uids(numbers))
    return replies.STORE_COMPLETED


def _copyuid(result: CopyResult) -> str | None:
    """The data of RFC 4315 §3 COPYUID, None when nothing was copied."""
    if not result.mapping:
        return None
    sources = format_uids([a for a, _ in result.mapping])
    targets = format_uids([b for _, b in result.mapping])
    return f"{result.uidvalidity} {sources} {targets}"


async def copy(s: Session, cmd: c.Copy) -> Reply:
    view = s.selected
    uids = [u for _, u in view.resolve(cmd.sequence_set, uid=cmd.uid) if u not in view.pending_expunge]
    try:
        result = await s.boxes.copy(view.name, uids, canonical(cmd.mailbox))
    except MailboxNotFound:
        raise CommandFailed(replies.TRYCREATE) from None  # RFC 3501 §6.4.7
    copyuid = _copyuid(result)
    return replies.COPY_NOTHING if copyuid is None else replies.COPY_COMPLETED.with_arg(copyuid)


async def move(s: Session, cmd: c.Move) -> Reply:
    view = require_writable(s)
    uids = [u for _, u in view.resolve(cmd.sequence_set, uid=cmd.uid) if u not in view.pending_expunge]
    try:
        result = await s.boxes.move(view.name, uids, canonical(cmd.mailbox))
    except MailboxNotFound:
        raise CommandFailed(replies.TRYCREATE) from None
    copyuid = _copyuid(result)
    if copyuid:  # RFC 6851 §4.3: COPYUID in an untagged OK before the EXPUNGEs
        await s.send(replies.MOVED.with_arg(copyuid).line())
    for line in view.expunged([a for a, _ in result.mapping]):
        await s.send(line)
    return replies.MOVE_COMPLETED
