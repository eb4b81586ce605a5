"""Folder listings for SELECT / STATUS, cached in memory per process (issue 8).

A listing is what a session keeps per message: UID, flags, INTERNALDATE, RFC822.SIZE,
MODSEQ (:class:`imap.backend.MessageMeta`, no content, nothing sealed). It is read with
driver-level statements (:mod:`gateway.store.raw`, no ORM instances), and kept per folder while the folder's
UIDVALIDITY and HIGHESTMODSEQ are unchanged: every change to a folder's messages
(delivery, APPEND, COPY/MOVE, STORE, EXPUNGE, INBOX rename) raises HIGHESTMODSEQ in the
same transaction, so one read of the folder row tells whether the cached listing is
current. When it moved, only the rows changed since are read and merged; a count of the
folder's rows shows whether anything was expunged, and only then is it listed again.

The cache holds immutable values shared by all sessions (50 sessions on one folder hold
one listing, not 50), is bounded in folders, and lives only in memory.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

from gateway.mailstore.folders import folder_key
from gateway.store.models import Folder, Message
from gateway.store.raw import RawStatement, Runner
from imap.backend import FolderStatus, MailboxNotFound, MessageMeta, MessageSummary

MAX_FOLDERS = 64  # listings kept per process (a 5,000-message listing is ~1.5 MB)
MAX_SUMMARIES = 20_000  # decrypted ENVELOPE/BODYSTRUCTURE summaries kept per process


@dataclass(frozen=True, slots=True)
class FolderRow:
    id: int
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    recent_uid: int = 0  # RFC 3501 §2.3.2 recent mark (it moves without HIGHESTMODSEQ)
    object_id: str = ""  # RFC 8474 MAILBOXID, without its "F" prefix


@dataclass(frozen=True, slots=True)
class Listing:
    folder: FolderRow
    messages: tuple[MessageMeta, ...]  # in UID order
    uids: frozenset[int]

    def status(self) -> FolderStatus:
        seen = sum(1 for m in self.messages if "\\Seen" in m.flags)
        f = self.folder
        recent = sum(1 for m in self.messages if m.uid > f.recent_uid)
        deleted = [m.size for m in self.messages if "\\Deleted" in m.flags]  # RFC 9208 §4.2
        return FolderStatus(uidvalidity=f.uidvalidity, uidnext=f.uidnext, highestmodseq=f.highestmodseq,
                            messages=len(self.messages), unseen=len(self.messages) - seen,
                            recent=recent, recent_uid=f.recent_uid, size=sum(m.size for m in self.messages),
                            mailbox_id=mailbox_object_id(f),
                            deleted=len(deleted), deleted_octets=sum(deleted))


def mailbox_object_id(folder: FolderRow) -> str:
    """RFC 8474 §4 MAILBOXID: ``F`` and the folder's random ``object_id`` (a folder from before
    migration 0010 without one: a digest of its row id and UIDVALIDITY, equally stable)."""
    if folder.object_id:
        return "F" + folder.object_id
    return "F" + hashlib.sha256(b"%d:%d" % (folder.id, folder.uidvalidity)).hexdigest()[:24]


_FOLDER_ROW = RawStatement(
    "SELECT id, uidvalidity, uidnext, highestmodseq, recent_uid, object_id FROM folders"
    " WHERE mailbox_id = ? AND name = ?",
    (Folder.__table__.c.mailbox_id, Folder.__table__.c.name))


def folder_row(session: Runner, mailbox_id: int, name: str) -> FolderRow:
    """The folder's bookkeeping in one driver-level query; raises MailboxNotFound."""
    row = _FOLDER_ROW.first(session, mailbox_id, folder_key(name))
    if row is None:
        raise MailboxNotFound()
    return FolderRow(int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]), row[5] or "")


_M = Message.__table__.c
_META_SQL = "SELECT uid, flags, internal_date, size, modseq FROM messages WHERE mailbox_id = ? AND folder_id = ?"
_META_TYPES = (None, None, _M.internal_date, None, None)
_METAS = RawStatement(_META_SQL + " ORDER BY uid", (_M.mailbox_id, _M.folder_id), _META_TYPES)
_METAS_SINCE = RawStatement(_META_SQL + " AND modseq > ? ORDER BY uid", (_M.mailbox_id, _M.folder_id, _M.modseq),
                            _META_TYPES)
_COUNT = RawStatement("SELECT count(*) FROM messages WHERE mailbox_id = ? AND folder_id = ?",
                      (_M.mailbox_id, _M.folder_id))


def read_metas(session: Runner, mailbox_id: int, folder_id: int,
               changed_since: int | None = None) -> list[MessageMeta]:
    """Messages of a folder in UID order (only those with modseq above ``changed_since``)."""
    rows = _METAS.all(session, mailbox_id, folder_id) if changed_since is None else \
        _METAS_SINCE.all(session, mailbox_id, folder_id, changed_since)
    return [MessageMeta(uid, frozenset(flags.split()), when, size, modseq) for uid, flags, when, size, modseq in rows]


def _count(session: Runner, mailbox_id: int, folder_id: int) -> int:
    return int(_COUNT.one(session, mailbox_id, folder_id)[0])


class Listings:
    """The per-process cache (thread-safe: the backend calls it from worker threads)."""

    def __init__(self, max_folders: int = MAX_FOLDERS) -> None:
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, Listing] = OrderedDict()
        self._loading = [threading.Lock() for _ in range(16)]  # by folder id: one reader per folder
        self._max = max_folders

    def _cached(self, folder_id: int) -> Listing | None:
        with self._lock:
            cached = self._cache.get(folder_id)
            if cached is not None:
                self._cache.move_to_end(folder_id)
            return cached

    def get(self, session: Runner, mailbox_id: int, name: str) -> Listing:
        folder = folder_row(session, mailbox_id, name)
        cached = self._cached(folder.id)
        if cached is not None and cached.folder == folder:
            return cached
        with self._loading[folder.id % len(self._loading)]:  # sessions selecting it at once wait
            cached = self._cached(folder.id)  # for the first one's listing
            if cached is not None and cached.folder == folder:
                return cached
            return self._load(session, mailbox_id, name, folder, cached)

    def _load(self, session: Runner, mailbox_id: int, name: str, folder: FolderRow,
              cached: Listing | None) -> Listing:
        messages: list[MessageMeta] | None = None
        if cached is not None and cached.folder.uidvalidity == folder.uidvalidity \
                and cached.folder.highestmodseq == folder.highestmodseq:
            messages = list(cached.messages)  # only the recent mark moved: the same messages
        elif cached is not None and cached.folder.uidvalidity == folder.uidvalidity \
                and cached.folder.highestmodseq < folder.highestmodseq:
            changed = read_metas(session, mailbox_id, folder.id, cached.folder.highestmodseq)
            merged = {m.uid: m for m in cached.messages}
            merged.update((m.uid, m) for m in changed)
            if len(merged) == _count(session, mailbox_id, folder.id):  # nothing expunged (see the module text)
                messages = [merged[uid] for uid in sorted(merged)]
        if messages is None:
            messages = read_metas(session, mailbox_id, folder.id)
        listing = Listing(folder, tuple(messages), frozenset(m.uid for m in messages))
        # Statements may see later commits than the folder row (SQLite without BEGIN): keep the
        # listing only if the folder did not move meanwhile, so a cached one is exact.
        if folder_row(session, mailbox_id, name) == folder:
            with self._lock:
                self._cache[folder.id] = listing
                self._cache.move_to_end(folder.id)
                while len(self._cache) > self._max:
                    self._cache.popitem(last=False)
        return listing


class Summaries:
    """Decrypted ENVELOPE / BODYSTRUCTURE summaries by (folder id, UIDVALIDITY, UID), LRU-bounded.

    A message's content never changes under its UID, so an entry never goes stale; the
    backend serves one only for a UID in the folder's current listing (an expunged message
    is left out as before) and only through a folder id looked up for the session's own
    mailbox. Memory only: the stored form stays sealed (``Message.summary_sealed``).
    """

    def __init__(self, max_entries: int = MAX_SUMMARIES) -> None:
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, int, int], MessageSummary] = OrderedDict()
        self._max = max_entries

    def get_many(self, folder: FolderRow, uids: list[int]) -> dict[int, MessageSummary]:
        found: dict[int, MessageSummary] = {}
        with self._lock:
            for uid in uids:
                key = (folder.id, folder.uidvalidity, uid)
                summary = self._cache.get(key)
                if summary is not None:
                    self._cache.move_to_end(key)
                    found[uid] = summary
        return found

    def put_many(self, folder: FolderRow, summaries: dict[int, MessageSummary]) -> None:
        with self._lock:
            for uid, summary in summaries.items():
                self._cache[(folder.id, folder.uidvalidity, uid)] = summary
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
