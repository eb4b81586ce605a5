"""NOTIFY (RFC 5465), authenticated and selected states: ``NOTIFY SET`` replaces what the
session watches (with ``STATUS``, one ``* STATUS`` per watched mailbox first, §5.1),
``NOTIFY NONE`` stops it. The watching itself is :mod:`imap.handlers.notify_watch`."""

from __future__ import annotations

from imap.handlers.notify_watch import NotifyWatcher
from imap.proto import replies
from imap.proto.commands import Notify
from imap.proto.replies import Reply
from imap.session import Session


async def notify(s: Session, cmd: Notify) -> Reply:
    if cmd.none:
        await s.set_notifier(None)
        return replies.NOTIFY_COMPLETED
    watcher = NotifyWatcher(s, cmd)
    await s.set_notifier(None)
    await watcher.begin(send_status=cmd.status)
    await s.set_notifier(watcher)
    return replies.NOTIFY_COMPLETED
