"""Authenticated state: SELECT / EXAMINE, STATUS (RFC 3501 §6.3), ENABLE (RFC 5161),
NAMESPACE (RFC 2342), IDLE (RFC 2177). The commands that manage mailboxes (CREATE, DELETE,
RENAME, (UN)SUBSCRIBE, LIST, LSUB) are in :mod:`imap.handlers.mailboxes`, APPEND in
:mod:`imap.handlers.append`."""

from __future__ import annotations

import asyncio
import logging

from imap.backend import DELIMITER
from imap.enabled import ENABLEABLE, Enabled
from imap.handlers import qresync
from imap.handlers.mailboxes import canonical, selected_list_line
from imap.handlers.status_items import mailbox_id, status_line
from imap.proto import commands as c
from imap.proto import encoder, replies
from imap.proto.errors import BadCommand
from imap.proto.replies import Reply
from imap.selected_view import SelectedView
from imap.session import Session

log = logging.getLogger("imap.session")


async def select(s: Session, cmd: c.Select) -> Reply:
    """RFC 3501 §6.3.1-2; in IMAP4rev2 (RFC 9051 §6.3.2, Appendix E items 9-12) no RECENT and
    no ``[UNSEEN]``, a LIST response; ``[CLOSED]`` first when a mailbox was selected (IMAP4rev2,
    or QRESYNC: RFC 7162 §3.2.11)."""
    qresync.check_select(s, cmd)
    rev2 = s.enabled.rev2
    if s.view is not None and (rev2 or s.qresync):
        await s.send(replies.PREVIOUS_CLOSED.line())
    s.view = None  # RFC 3501 §6.3.1: a new SELECT first deselects, even if it fails
    name = canonical(cmd.mailbox)
    status = await s.boxes.select_folder(name, read_only=cmd.readonly)
    messages = await s.boxes.list_messages(name)
    view = SelectedView(name, status, messages, read_only=cmd.readonly or status.read_only)
    view.rev2 = rev2  # no \Recent taken (RFC 9051 Appendix E item 12)
    await view.take_recent(s.boxes, view.uids)  # RFC 3501 §2.3.2; EXAMINE takes nothing (§6.3.2)
    if cmd.condstore or cmd.qresync:
        s.enable(Enabled.CONDSTORE)  # RFC 7162 §3.1.8
    send = s.send
    await send(view.flags_line())
    await send(encoder.untagged(b"%d EXISTS" % view.exists))
    if rev2:
        await send(await selected_list_line(s, name))  # RFC 9051 §6.3.2
    else:
        await send(encoder.untagged(b"%d RECENT" % len(view.recent)))
        if (unseen := view.first_unseen()) is not None:
            await send(replies.FIRST_UNSEEN.with_arg(unseen).line())
    await send(view.permanent_flags_line())
    await send(replies.UIDS_VALID.with_arg(view.uidvalidity).line())
    uidnext = max(status.uidnext, (view.uids[-1] + 1) if view.uids else 1)
    await send(replies.PREDICTED_UIDNEXT.with_arg(uidnext).line())
    await send(replies.HIGHEST_MODSEQ.with_arg(view.highestmodseq).line())  # RFC 7162 §3.1.2.1
    if status.mailbox_id:
        await send(replies.MAILBOX_ID.with_arg(mailbox_id(status).decode("ascii")).line())  # RFC 8474 §4.1
    await qresync.resync(s, cmd, view)  # RFC 7162 §3.2.5
    s.view = view
    if cmd.readonly:
        return replies.EXAMINE_COMPLETED
    return replies.SELECT_READ_ONLY if view.read_only else replies.SELECT_COMPLETED


async def status(s: Session, cmd: c.Status) -> Reply:
    name = canonical(cmd.mailbox)
    await s.send(status_line(name, await s.boxes.folder_status(name), cmd.items, s.config.appendlimit,
                             utf8=s.enabled.utf8))
    return replies.STATUS_COMPLETED


async def enable(s: Session, cmd: c.Enable) -> Reply:
    """RFC 5161 §3.1: ``* ENABLED`` names the requested capabilities the server knows (the
    table :data:`imap.enabled.ENABLEABLE`); others are ignored."""
    names: list[str] = []
    mode = Enabled.NONE
    for cap in cmd.capabilities:
        known = ENABLEABLE.get(cap.upper())
        if known is not None and known[0] not in names:
            names.append(known[0])
            mode |= known[1]
    if Enabled.QRESYNC in mode:
        await qresync.enable(s)  # RFC 7162 §3.2.3
    s.enable(mode)
    await s.send(encoder.untagged(("ENABLED " + " ".join(names)).strip()))
    return replies.ENABLE_COMPLETED


async def namespace(s: Session, cmd: c.Namespace) -> Reply:
    # RFC 2342 §5: one personal namespace, no other users' or shared ones.
    await s.send(encoder.untagged(b'NAMESPACE (("" "' + DELIMITER.encode() + b'")) NIL NIL'))
    return replies.NAMESPACE_COMPLETED


async def idle(s: Session, cmd: c.Idle) -> Reply | None:
    """RFC 2177: updates are pushed as they happen until the client sends DONE."""
    tag = cmd.tag

    async def watch() -> None:
        # Woken at least every access_check seconds to ask whether the account may still use
        # the session (suspended or removed: * BYE, RFC 9051 §7.1.5).
        wait = min(s.config.idle_poll, s.config.access_check)
        try:
            while not s.idle_should_stop:
                view = s.view
                s.idle_waiting(True)
                try:
                    if view is None:
                        await asyncio.sleep(wait)
                        changed = False
                    else:
                        changed = await s.boxes.wait_for_change(view.name, view.highestmodseq, wait)
                finally:
                    s.idle_waiting(False)
                if not s.idle_should_stop and not await s.still_open():
                    s.end_with(replies.ACCOUNT_DISABLED)
                    return
                if not changed:
                    await asyncio.sleep(0.01)  # never spin, whatever the backend does
                elif view is not None and not s.idle_should_stop:
                    lines = await view.refresh(s.boxes, allow_expunge=True, condstore=s.condstore)
                    for line in lines + await view.search.changes(view):  # RFC 5267 §4.2
                        await s.send(line)
                    await s.flush()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("IDLE watcher stopped")

    async def on_line(session: Session, line: bytes) -> None:
        await session.stop_idle_watch()
        if line.strip().upper() != b"DONE":
            await session.fail_continued(tag, BadCommand(replies.EXPECTED_DONE))
            return
        await session.push_updates(allow_expunge=True)
        await session.finish_continued(tag, None, replies.IDLE_TERMINATED)

    s.expect_line(on_line)
    await s.send(replies.IDLING.line())
    s.start_idle_watch(watch)
    return None
