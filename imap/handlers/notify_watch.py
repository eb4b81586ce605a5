"""NOTIFY (RFC 5465): what a session watches and the unsolicited responses it gets while
idle between commands, like IDLE without the IDLE command.

A :class:`NotifyWatcher` runs one task per session. It waits on
:meth:`imap.backend.Mailboxes.wait_for_any_change` (the store's change counter: local
writes, and other nodes' through PostgreSQL LISTEN/NOTIFY), then, holding the session's
command lock, compares what it sees with its last snapshot:

* the selected mailbox (a ``selected`` / ``selected-delayed`` group): the usual EXISTS,
  EXPUNGE / VANISHED and FETCH of the view (``selected-delayed`` keeps expunges for the next
  command that may report them, §5.1), and for new messages a FETCH of the MessageNew
  attributes (§5.2);
* the other watched mailboxes: ``* STATUS`` with MESSAGES / UIDNEXT / UNSEEN for new or
  expunged messages, UNSEEN (and HIGHESTMODSEQ once CONDSTORE is on) for flag changes (§5.2-5.3);
* MailboxName (§5.4): ``* LIST`` for a created mailbox, ``\\NonExistent`` for a deleted one,
  ``("OLDNAME" (old))`` for a renamed one (same UIDVALIDITY under a new name);
* SubscriptionChange (§5.5): ``* LIST`` with or without ``\\Subscribed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from imap.backend import DELIMITER, FolderInfo, FolderStatus
from imap.handlers.fetch import fetch
from imap.proto import encoder, replies
from imap.proto.commands import Fetch, Notify
from imap.proto.commands_notify import MESSAGE_EVENTS, Event, EventGroup, Filter
from imap.proto.seqset import SequenceSet
from imap.session import Session

log = logging.getLogger("imap.notify")
_DELIM = encoder.quoted(DELIMITER)


def matches(group: EventGroup, name: str, subscribed: set[str]) -> bool:
    """Whether a (non-selected) filter covers the mailbox ``name`` (RFC 5465 §6)."""
    kind = group.filter
    if kind is Filter.PERSONAL:
        return True
    if kind is Filter.INBOXES:  # delivery only ever goes to INBOX here
        return name == "INBOX"
    if kind is Filter.SUBSCRIBED:
        return name in subscribed
    if kind is Filter.MAILBOXES:
        return name in group.mailboxes
    if kind is Filter.SUBTREE:
        return any(name == top or name.startswith(top + DELIMITER) for top in group.mailboxes)
    return False


def status_line(name: str, values: Iterable[tuple[str, int]]) -> bytes:
    items = b" ".join(b"%s %d" % (key.encode(), value) for key, value in values)
    return encoder.untagged(b"STATUS " + encoder.mailbox(name) + b" (" + items + b")")


def _list_line(name: str, attrs: list[str], old: str | None = None) -> bytes:
    extra = b"" if old is None else b' ("OLDNAME" (' + encoder.mailbox(old) + b"))"
    return encoder.untagged(b"LIST " + encoder.flags(attrs) + b" " + _DELIM + b" " + encoder.mailbox(name) + extra)


@dataclass
class _Snapshot:
    statuses: dict[str, FolderStatus] = field(default_factory=dict)  # watched for message events
    uidvalidity: dict[str, int] = field(default_factory=dict)  # every selectable folder (MailboxName)
    subscribed: set[str] = field(default_factory=set)


class NotifyWatcher:
    """One session's NOTIFY SET (:class:`imap.session.Notifier`)."""

    def __init__(self, session: Session, command: Notify) -> None:
        self.s = session
        self.groups = command.groups
        self.selected = next((g for g in command.groups if g.selected), None)
        others = [g for g in command.groups if not g.selected]
        self.others = others
        used = {e for g in others for e in g.events}
        self.message_events = bool(used & MESSAGE_EVENTS)
        self.names = Event.MAILBOX_NAME in used
        self.subscriptions = Event.SUBSCRIPTION_CHANGE in used
        self.flag_changes = Event.FLAG_CHANGE in used
        self.snapshot = _Snapshot()
        self.token = -1
        self._task: asyncio.Task[None] | None = None

    # --- the watched mailboxes --------------------------------------------------------
    def events_of(self, name: str, subscribed: set[str]) -> set[Event]:
        """The events watched on a mailbox other than the selected one (the union of its groups)."""
        return {e for g in self.others if matches(g, name, subscribed) for e in g.events}

    def _selected_name(self) -> str | None:
        return self.s.view.name if self.s.view is not None else None

    async def _look(self) -> tuple[list[FolderInfo], set[str], dict[str, FolderStatus]]:
        boxes = self.s.boxes
        folders = [f for f in await boxes.list_folders() if f.selectable]
        subscribed = set(await boxes.list_subscriptions()) if (self.subscriptions or any(
            g.filter is Filter.SUBSCRIBED for g in self.others)) else set()
        statuses: dict[str, FolderStatus] = {}
        if self.message_events:
            for info in folders:
                if self.events_of(info.name, subscribed) & MESSAGE_EVENTS:
                    with contextlib.suppress(Exception):  # deleted meanwhile: MailboxName tells
                        statuses[info.name] = await boxes.folder_status(info.name)
        return folders, subscribed, statuses

    async def begin(self, *, send_status: bool) -> None:
        """At NOTIFY SET: the first snapshot, and with STATUS a ``* STATUS`` for each watched
        mailbox but the selected one (§5.1: MESSAGES UIDNEXT UIDVALIDITY UNSEEN, HIGHESTMODSEQ
        when flag changes are watched)."""
        self.token = await self.s.boxes.wait_for_any_change(-1, 0.0)
        folders, subscribed, statuses = await self._look()
        self.snapshot = _Snapshot(statuses, await self._uidvalidities(folders, statuses), subscribed)
        if not send_status:
            return
        selected = self._selected_name()
        for info in folders:
            st = statuses.get(info.name)
            if st is None or info.name == selected:
                continue
            values = [("MESSAGES", st.messages), ("UIDNEXT", st.uidnext), ("UIDVALIDITY", st.uidvalidity),
                      ("UNSEEN", st.unseen)]
            if self.flag_changes:
                values.append(("HIGHESTMODSEQ", st.highestmodseq))
            await self.s.send(status_line(info.name, values))

    async def _uidvalidities(self, folders: list[FolderInfo], known: dict[str, FolderStatus],
                             previous: dict[str, int] | None = None) -> dict[str, int]:
        if not self.names:
            return {}
        out: dict[str, int] = {}
        for info in folders:
            if info.name in known:
                out[info.name] = known[info.name].uidvalidity
            elif previous is not None and info.name in previous:
                out[info.name] = previous[info.name]
            else:
                with contextlib.suppress(Exception):
                    out[info.name] = (await self.s.boxes.folder_status(info.name)).uidvalidity
        return out

    # --- changes ----------------------------------------------------------------------
    async def changes(self) -> list[bytes]:
        """The untagged responses for what changed since the last look."""
        out: list[bytes] = []
        folders, subscribed, statuses = await self._look()
        old = self.snapshot
        infos = {f.name: f for f in folders}
        if self.names:
            uidvalidity = await self._uidvalidities(folders, statuses, old.uidvalidity)
            out += self._name_changes(old.uidvalidity, uidvalidity, infos, subscribed | old.subscribed)
        else:
            uidvalidity = {}
        if self.subscriptions:
            for name in sorted(subscribed ^ old.subscribed):
                if Event.SUBSCRIPTION_CHANGE in self.events_of(name, subscribed | old.subscribed):
                    out.append(_list_line(name, self._attrs(infos.get(name), subscribed=name in subscribed)))
        selected = self._selected_name()
        for name, new in statuses.items():
            before = old.statuses.get(name)
            if before is None or name == selected:
                continue
            values = self._status_change(before, new, self.events_of(name, subscribed))
            if values:
                out.append(status_line(name, values))
        self.snapshot = _Snapshot(statuses, uidvalidity, subscribed)
        return out

    def _status_change(self, old: FolderStatus, new: FolderStatus, events: set[Event]) -> list[tuple[str, int]]:
        condstore = self.s.condstore
        if new.uidvalidity != old.uidvalidity:  # the mailbox was made anew under its name
            values = [("MESSAGES", new.messages), ("UIDNEXT", new.uidnext), ("UIDVALIDITY", new.uidvalidity),
                      ("UNSEEN", new.unseen)]
            return values + ([("HIGHESTMODSEQ", new.highestmodseq)] if condstore else [])
        appended = max(new.uidnext - old.uidnext, 0)
        expunged = new.messages < old.messages + appended
        keys: list[str] = []
        if (appended and Event.MESSAGE_NEW in events) or (expunged and Event.MESSAGE_EXPUNGE in events):
            keys += ["MESSAGES", "UIDNEXT", "UNSEEN"]
        flags = new.unseen != old.unseen or (new.highestmodseq != old.highestmodseq and not appended and not expunged)
        if flags and Event.FLAG_CHANGE in events and "UNSEEN" not in keys:
            keys.append("UNSEEN")
        if not keys:
            return []
        if condstore and new.highestmodseq != old.highestmodseq:
            keys.append("HIGHESTMODSEQ")
        current = {"MESSAGES": new.messages, "UIDNEXT": new.uidnext, "UNSEEN": new.unseen,
                   "HIGHESTMODSEQ": new.highestmodseq}
        return [(k, current[k]) for k in keys]

    def _attrs(self, info: FolderInfo | None, *, subscribed: bool) -> list[str]:
        attrs = [] if info is None else ["\\HasChildren" if info.has_children else "\\HasNoChildren"]
        return attrs + (["\\Subscribed"] if subscribed else [])

    def _name_changes(self, old: dict[str, int], new: dict[str, int], infos: dict[str, FolderInfo],
                      subscribed: set[str]) -> list[bytes]:
        out: list[bytes] = []
        gone = {v: n for n, v in old.items() if n not in new}
        renamed: set[str] = set()
        for name in sorted(set(new) - set(old)):
            previous = gone.get(new[name])
            if not ({Event.MAILBOX_NAME} & (self.events_of(name, subscribed) | (
                    self.events_of(previous, subscribed) if previous else set()))):
                continue
            if previous is not None:
                renamed.add(previous)
            out.append(_list_line(name, self._attrs(infos.get(name), subscribed=False), previous))
        for name in sorted(set(old) - set(new) - renamed):
            if Event.MAILBOX_NAME in self.events_of(name, subscribed):
                out.append(_list_line(name, ["\\NonExistent"]))
        return out

    async def selected_changes(self) -> None:
        """The selected mailbox's EXISTS / EXPUNGE / FETCH, and MessageNew's FETCH (§5.2)."""
        group, view = self.selected, self.s.view
        if group is None or view is None or not group.events or self.s.idling:
            return
        if Event.FLAG_CHANGE not in group.events:  # flag changes alone wait for the next command
            st = await self.s.boxes.folder_status(view.name)
            if st.uidnext == view.uidnext and st.messages == view.exists - len(view.pending_expunge):
                return
        before = set(view.uids)
        await self.s.push_updates(allow_expunge=group.filter is Filter.SELECTED)
        new = [u for u in view.uids if u not in before]
        if new and group.fetch and self.s.view is view:
            await fetch(self.s, Fetch("*", True, SequenceSet.of(*new), group.fetch))

    # --- the task -----------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        s = self.s
        loop = asyncio.get_running_loop()
        looked = loop.time()
        while not s.closed:
            try:
                # Woken at least every access_check seconds, as IDLE (handlers/auth.py): a suspension
                # ends the session within that bound. The folders are looked at on an announced
                # change, or every idle_poll seconds as before, not at each such wake-up.
                wait = min(s.config.idle_poll, s.config.access_check)
                token = await s.boxes.wait_for_any_change(self.token, wait)
                if not await s.still_open():  # suspended or removed: RFC 9051 §7.1.5
                    s.end_with(replies.ACCOUNT_DISABLED)
                    return
                if token == self.token and loop.time() - looked < s.config.idle_poll:
                    continue
                looked = loop.time()
                async with s.busy:
                    if s.closed or s.notifier is not self:
                        return
                    await self.selected_changes()
                    for line in await self.changes():
                        await s.send(line)
                    await s.flush()
                self.token = token
            except asyncio.CancelledError:
                raise
            except Exception:  # e.g. the database unreachable for a moment: look again later
                log.exception("NOTIFY watcher failed; retrying")
                await asyncio.sleep(s.config.idle_poll)
