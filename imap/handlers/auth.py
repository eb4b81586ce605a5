"""Authenticated state: SELECT / EXAMINE, STATUS (RFC 3501 §6.3), ENABLE (RFC 5161),
NAMESPACE (RFC 2342), IDLE (RFC 2177). The commands that manage mailboxes (CREATE, DELETE,
RENAME, (UN)SUBSCRIBE, LIST, LSUB) are in :mod:`imap.handlers.mailboxes`, APPEND in
:mod:`imap.handlers.append`."""

from __future__ import annotations

import asyncio
import logging

from imap.backend import DELIMITER
from imap.handlers.mailboxes import canonical
from imap.proto import commands as c
from imap.proto import encoder, replies
from imap.proto.commands import StatusItem
from imap.proto.errors import BadCommand
from imap.proto.replies import Reply
from imap.selected_view import SelectedView
from imap.session import Session

log = logging.getLogger("imap.session")


async def select(s: Session, cmd: c.Select) -> Reply:
    s.view = None  # RFC 3501 §6.3.1: a new SELECT first deselects, even if it fails
    name = canonical(cmd.mailbox)
    status = await s.boxes.select_folder(name, read_only=cmd.readonly)
    messages = await s.boxes.list_messages(name)
    view = SelectedView(name, status, messages, read_only=cmd.readonly or status.read_only)
    await view.take_recent(s.boxes, view.uids)  # RFC 3501 §2.3.2; EXAMINE takes nothing (§6.3.2)
    if cmd.condstore:
        s.condstore = True  # RFC 7162 §3.1.8
    send = s.send
    await send(view.flags_line())
    await send(encoder.untagged(b"%d EXISTS" % view.exists))
    await send(encoder.untagged(b"%d RECENT" % len(view.recent)))
    if (unseen := view.first_unseen()) is not None:
        await send(replies.FIRST_UNSEEN.with_arg(unseen).line())
    await send(view.permanent_flags_line())
    await send(replies.UIDS_VALID.with_arg(view.uidvalidity).line())
    uidnext = max(status.uidnext, (view.uids[-1] + 1) if view.uids else 1)
    await send(replies.PREDICTED_UIDNEXT.with_arg(uidnext).line())
    await send(replies.HIGHEST_MODSEQ.with_arg(view.highestmodseq).line())  # RFC 7162 §3.1.2.1
    s.view = view
    if cmd.readonly:
        return replies.EXAMINE_COMPLETED
    return replies.SELECT_READ_ONLY if view.read_only else replies.SELECT_COMPLETED


async def status(s: Session, cmd: c.Status) -> Reply:
    name = canonical(cmd.mailbox)
    st = await s.boxes.folder_status(name)
    values = {
        StatusItem.MESSAGES: st.messages, StatusItem.RECENT: st.recent, StatusItem.UIDNEXT: st.uidnext,
        StatusItem.UIDVALIDITY: st.uidvalidity, StatusItem.UNSEEN: st.unseen,
        StatusItem.HIGHESTMODSEQ: st.highestmodseq, StatusItem.APPENDLIMIT: s.config.appendlimit,
        # RFC 9208 §4.2: what an EXPUNGE would free, DELETED-STORAGE in KiB like STORAGE (§5.1)
        StatusItem.DELETED: st.deleted, StatusItem.DELETED_STORAGE: -(-st.deleted_octets // 1024),
    }  # fmt: skip
    items = b" ".join(b"%s %d" % (item.value.encode(), values[item]) for item in cmd.items)
    await s.send(encoder.untagged(b"STATUS " + encoder.mailbox(name) + b" (" + items + b")"))
    return replies.STATUS_COMPLETED


async def enable(s: Session, cmd: c.Enable) -> Reply:
    enabled = [cap for cap in cmd.capabilities if cap == "CONDSTORE"]  # RFC 5161 §3.1
    if enabled:
        s.condstore = True
    await s.send(encoder.untagged(("ENABLED " + " ".join(enabled)).strip()))
    return replies.ENABLE_COMPLETED


async def namespace(s: Session, cmd: c.Namespace) -> Reply:
    # RFC 2342 §5: one personal namespace, no other users' or shared ones.
    await s.send(encoder.untagged(b'NAMESPACE (("" "' + DELIMITER.encode() + b'")) NIL NIL'))
    return replies.NAMESPACE_COMPLETED


async def idle(s: Session, cmd: c.Idle) -> Reply | None:
    """RFC 2177: updates are pushed as they happen until the client sends DONE."""
    tag = cmd.tag

    async def watch() -> None:
        try:
            while not s.idle_should_stop:
                view = s.view
                s.idle_waiting(True)
                try:
                    if view is None:
                        await asyncio.sleep(s.config.idle_poll)
                        changed = False
                    else:
                        changed = await s.boxes.wait_for_change(view.name, view.highestmodseq, s.config.idle_poll)
                finally:
                    s.idle_waiting(False)
                if not changed:
                    await asyncio.sleep(0.01)  # never spin, whatever the backend does
                elif view is not None and not s.idle_should_stop:
                    for line in await view.refresh(s.boxes, allow_expunge=True, condstore=s.condstore):
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
