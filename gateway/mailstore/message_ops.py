"""Message operations for the IMAP backend: listing, decrypting, summaries, append, copy /
move (re-sealed, new uuid, the same EMAILID, RFC 8474 §5.1), flags with MODSEQ (RFC 7162
§3.1.3), expunge (RFC 3501 §6.4.3).

Blocking functions over one SQLAlchemy session, run in worker threads by
:mod:`gateway.imap_adapter.backend`. Listings select columns only, never the sealed blobs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select, update
from sqlalchemy.orm import Session

from gateway.mailstore import expunged, quota, summaries
from gateway.mailstore.folder_ops import get_folder
from gateway.mailstore.folders import allocate_uid, folder_key, take_uid
from gateway.mailstore.folders import folder_id as folder_id_of
from gateway.mailstore.sealed import KeyNotCached, SealedRow, open_message, reseal, seal_copy
from gateway.store.keys import KeyService
from gateway.store.models import Folder, Message
from gateway.store.raw import Direct, RawStatement
from imap.backend import MailboxNotFound, MessageMeta, MessageSummary, OverQuota, StoreResult
from imap.proto.commands import StoreMode
from imap.proto.flags import is_system

NO_DEFAULTS = quota.QuotaDefaults()  # no configured limit: only a mailbox's own limits apply
IN_CHUNK = 500  # bound on IN (...) lists (SQLite's variable limit)


def _chunks(values: Sequence[int]) -> Iterator[Sequence[int]]:
    for i in range(0, len(values), IN_CHUNK):
        yield values[i : i + IN_CHUNK]


def _flags(text: str) -> frozenset[str]:
    return frozenset(text.split())


_META_COLUMNS = (Message.uid, Message.flags, Message.internal_date, Message.size, Message.modseq)
_M = Message.__table__.c
_F = Folder.__table__.c
# Every read of sealed blobs takes the row's mailbox id (its folder's: the composite foreign key
# of migration 0017) with the row, for the ownership rule of gateway.mailstore.sealed.
_OPENING = (_M.mailbox_id, _M.uuid, _M.data_key_id)


def _opening(mailbox_id: int, *extra: ColumnElement[Any]) -> Select[Any]:
    return select(*_OPENING, *extra).where(_M.mailbox_id == mailbox_id)


def fetch_raw(session: Session, keys: KeyService, mailbox_id: int, folder_id: int, uid: int) -> bytes | None:
    row = session.connection().execute(
        _opening(mailbox_id, _M.sealed).where(_M.folder_id == folder_id, _M.uid == uid)).first()
    if row is None:
        return None
    return open_message(session, keys, mailbox_id, SealedRow(*row))


_ONE_BY_NAME = RawStatement(
    "SELECT m.uid, f.mailbox_id, m.uuid, m.data_key_id, m.sealed FROM messages m JOIN folders f"
    " ON f.mailbox_id = m.mailbox_id AND f.id = m.folder_id WHERE f.mailbox_id = ? AND f.name = ? AND m.uid = ?",
    (_F.mailbox_id, _F.name, _M.uid))
_SIZE_BY_NAME = RawStatement(
    "SELECT m.size FROM messages m JOIN folders f ON f.mailbox_id = m.mailbox_id AND f.id = m.folder_id"
    " WHERE f.mailbox_id = ? AND f.name = ? AND m.uid = ?", (_F.mailbox_id, _F.name, _M.uid))


def fetch_one_direct(conn: Direct, keys: KeyService, mailbox_id: int, name: str, uid: int, *,
                     max_size: int | None = None) -> dict[int, bytes] | None:
    """One message by folder name and UID on a direct connection: ``{uid: raw}``, ``{}`` if absent.

    None when it needs the ORM path: the folder is unknown (MailboxNotFound comes from there),
    the data key is not in this process's cache yet, or the message is over ``max_size``.
    """
    key = folder_key(name)
    if max_size is not None:
        size = _SIZE_BY_NAME.first(conn, mailbox_id, key, uid)
        if size is None or size[0] > max_size:
            return None
    row = _ONE_BY_NAME.first(conn, mailbox_id, key, uid)
    if row is None:
        return None if folder_id_of(conn, mailbox_id, key) is None else {}
    found_uid, *sealed = row
    try:
        return {found_uid: open_message(conn, keys, mailbox_id, SealedRow(*sealed))}
    except KeyNotCached:
        return None


def fetch_raws(session: Session, keys: KeyService, mailbox_id: int, folder_id: int,
               uids: Sequence[int]) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    for chunk in _chunks(uids):
        rows = session.connection().execute(
            _opening(mailbox_id, _M.sealed, _M.uid).where(_M.folder_id == folder_id, _M.uid.in_(chunk))).all()
        for owner, uuid, data_key_id, sealed, uid in rows:
            found[uid] = open_message(session, keys, mailbox_id, SealedRow(owner, uuid, data_key_id, sealed))
    return found


def fetch_summaries(session: Session, keys: KeyService, mailbox_id: int, folder_id: int,
                    uids: Sequence[int]) -> tuple[dict[int, MessageSummary], dict[int, bytes]]:
    """Stored summaries by UID, and freshly computed sealed ones (by message id) to store."""
    found: dict[int, MessageSummary] = {}
    to_store: dict[int, bytes] = {}
    for chunk in _chunks(uids):
        rows = session.connection().execute(
            _opening(mailbox_id, _M.summary_sealed, _M.id, _M.uid).where(_M.folder_id == folder_id, _M.uid.in_(chunk))
        ).all()
        by_id = {message_id: SealedRow(owner, uuid, data_key_id, summary=summary_sealed)
                 for owner, uuid, data_key_id, summary_sealed, message_id, _ in rows}
        read, computed = summaries.read(session, keys, mailbox_id, by_id)
        found.update({uid: read[message_id].imap for *_, message_id, uid in rows})
        to_store.update(computed)
    return found, to_store


def store_summaries(session: Session, mailbox_id: int, sealed: dict[int, bytes]) -> None:
    summaries.store(session, mailbox_id, sealed)


def _reserve(session: Session, mailbox_id: int, defaults: quota.QuotaDefaults, octets: int, count: int) -> None:
    """RFC 9208 §4.3: a command that would take the mailbox over a limit fails with
    ``NO [OVERQUOTA]``, nothing stored (checked before the first write of the transaction)."""
    try:
        quota.reserve(session, mailbox_id, defaults, octets, count)
    except quota.QuotaExceeded as exc:
        raise OverQuota(detail=exc.resource) from None


_INSERT_APPENDED = RawStatement(
    "INSERT INTO messages (mailbox_id, folder_id, uid, uuid, data_key_id, flags, internal_date, size, modseq,"
    " sealed, summary_sealed, saved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    (_M.mailbox_id, _M.folder_id, _M.uid, _M.uuid, _M.data_key_id, _M.flags, _M.internal_date, _M.size, _M.modseq,
     _M.sealed, _M.summary_sealed, _M.saved_at))


def _append_one(session: Session, keys: KeyService, mailbox_id: int, name: str, raw: bytes,
                flags: Sequence[str], internal_date: dt.datetime | None) -> int:
    """Seal ``raw`` with its summary and insert it, driver-level: the folder's next UID and
    MODSEQ in one ``UPDATE … RETURNING`` (:func:`take_uid`), then the row, saved now (RFC 8514)."""
    copy = seal_copy(keys.for_mailbox(session, mailbox_id), raw, summaries.encode(summaries.compute(raw)))
    taken = take_uid(session, mailbox_id, name)
    if taken is None:
        raise MailboxNotFound()
    fid, uid, modseq = taken
    now = dt.datetime.now(dt.UTC)
    _INSERT_APPENDED.execute(session, mailbox_id, fid, uid, copy.uuid, copy.key.data_key_id, " ".join(flags),
                             internal_date or now, copy.size, modseq, copy.sealed, copy.summary, now)
    return uid


def append(session: Session, keys: KeyService, mailbox_id: int, name: str, raw: bytes, flags: Sequence[str],
           internal_date: dt.datetime | None, *, defaults: quota.QuotaDefaults = NO_DEFAULTS) -> tuple[int, int]:
    folder = get_folder(session, mailbox_id, name)  # for its name and UIDVALIDITY only: take_uid
    _reserve(session, mailbox_id, defaults, len(raw), 1)  # moves UIDNEXT under it (never read after)
    return folder.uidvalidity, _append_one(session, keys, mailbox_id, folder.name, raw, flags, internal_date)


def append_many(session: Session, keys: KeyService, mailbox_id: int, name: str,
                messages: Sequence[tuple[bytes, Sequence[str], dt.datetime | None]], *,
                defaults: quota.QuotaDefaults = NO_DEFAULTS) -> tuple[int, list[int]]:
    """MULTIAPPEND (RFC 3502): every message in the caller's one transaction, so an error on
    any of them rolls all of them back. Returns the folder's UIDVALIDITY and the new UIDs."""
    folder = get_folder(session, mailbox_id, name)
    _reserve(session, mailbox_id, defaults, sum(len(raw) for raw, _, _ in messages), len(messages))
    uids = [_append_one(session, keys, mailbox_id, folder.name, raw, flags, internal_date)
            for raw, flags, internal_date in messages]
    return folder.uidvalidity, uids


def _sizes(session: Session, mailbox_id: int, folder_id: int, uids: Sequence[int]) -> tuple[int, int]:
    """The octets and the number of the messages among ``uids`` in a folder."""
    octets = count = 0
    for chunk in _chunks(sorted(uids)):
        n, total = session.execute(select(func.count(Message.size), func.coalesce(func.sum(Message.size), 0))
                                   .where(Message.mailbox_id == mailbox_id, Message.folder_id == folder_id,
                                          Message.uid.in_(chunk))).one()
        octets, count = octets + int(total), count + int(n)
    return octets, count


def copy(session: Session, keys: KeyService, mailbox_id: int, source: str, uids: Sequence[int],
         destination: str, *, remove: bool, defaults: quota.QuotaDefaults = NO_DEFAULTS
         ) -> tuple[int, list[tuple[int, int]]]:
    """Copy (or move, ``remove``) messages; each copy is re-sealed under a new uuid. A COPY
    counts against the quota (RFC 9208 §4.3); a MOVE within the one quota root adds nothing."""
    if not remove:
        _reserve(session, mailbox_id, defaults, *_sizes(session, mailbox_id, get_folder(session, mailbox_id, source).id,
                                                           uids))
    src = get_folder(session, mailbox_id, source, for_update=remove)
    dst = get_folder(session, mailbox_id, destination)
    dest_key = keys.for_mailbox(session, mailbox_id)
    mapping: list[tuple[int, int]] = []
    moved: list[int] = []
    saved = dt.datetime.now(dt.UTC)
    for chunk in _chunks(sorted(uids)):
        rows = session.execute(
            select(Message).where(Message.mailbox_id == mailbox_id, Message.folder_id == src.id,
                                  Message.uid.in_(chunk)).order_by(Message.uid)
        ).scalars().all()
        for m in rows:
            row = SealedRow(src.mailbox_id, m.uuid, m.data_key_id, m.sealed, m.summary_sealed)
            uuid, sealed, summary = reseal(session, keys, mailbox_id, row, dest_key)
            uid, modseq = allocate_uid(session, mailbox_id, dst.id)
            session.add(Message(
                mailbox_id=mailbox_id, folder_id=dst.id, uid=uid, uuid=uuid, data_key_id=dest_key.data_key_id,
                conversation_id=m.conversation_id, flags=m.flags, internal_date=m.internal_date, size=m.size,
                modseq=modseq, sealed=sealed, summary_sealed=summary,
                email_id=m.email_id or m.uuid, saved_at=saved,  # RFC 8474 §5.1, RFC 8514 §4.1
            ))  # fmt: skip
            mapping.append((m.uid, uid))
            moved.append(m.id)
    if remove and moved:  # RFC 6851 §3.3: the copy and the expunge are one transaction
        for chunk in _chunks(moved):
            session.execute(delete(Message).where(Message.mailbox_id == mailbox_id, Message.id.in_(chunk)))
        src.highestmodseq += 1
        expunged.remember(session, src, [a for a, _ in mapping])
    session.flush()
    return dst.uidvalidity, mapping


def _apply(current: frozenset[str], mode: StoreMode, flags: Sequence[str]) -> frozenset[str]:
    if mode is StoreMode.ADD:
        return current | set(flags)
    if mode is StoreMode.REMOVE:
        upper = {f.upper() for f in flags if is_system(f)}
        return frozenset(f for f in current if f not in flags and f.upper() not in upper)
    return frozenset(flags)


def store_flags(session: Session, mailbox_id: int, name: str, uids: Sequence[int], mode: StoreMode,
                flags: Sequence[str], unchanged_since: int | None) -> StoreResult:
    folder = get_folder(session, mailbox_id, name, for_update=True)  # serialises MODSEQ allocation
    modseq = folder.highestmodseq + 1  # RFC 7162 §3.1.1: one new mod-sequence for this STORE
    updated: list[MessageMeta] = []
    conflicts: list[int] = []
    for chunk in _chunks(sorted(uids)):
        rows = session.execute(
            select(Message.id, *_META_COLUMNS).where(Message.mailbox_id == mailbox_id, Message.folder_id == folder.id,
                                                     Message.uid.in_(chunk))
        ).all()
        for message_id, uid, text, internal_date, size, old_modseq in rows:
            if unchanged_since is not None and old_modseq > unchanged_since:
                conflicts.append(uid)  # RFC 7162 §3.1.3 MODIFIED
                continue
            new = _apply(_flags(text), mode, flags)
            if new == _flags(text):
                continue
            session.execute(update(Message).where(Message.mailbox_id == mailbox_id, Message.id == message_id)
                            .values(flags=" ".join(sorted(new)), modseq=modseq))
            updated.append(MessageMeta(uid, new, internal_date, size, modseq))
    if updated:
        folder.highestmodseq = modseq
    return StoreResult(tuple(updated), tuple(conflicts))


def expunge(session: Session, mailbox_id: int, name: str, uids: Sequence[int] | None) -> list[int]:
    folder = get_folder(session, mailbox_id, name, for_update=True)
    query = select(Message.id, Message.uid, Message.flags).where(Message.mailbox_id == mailbox_id,
                                                                 Message.folder_id == folder.id)
    rows = session.execute(query).all()
    wanted = None if uids is None else set(uids)
    doomed = [(mid, uid) for mid, uid, text in rows
              if "\\Deleted" in _flags(text) and (wanted is None or uid in wanted)]
    for chunk in _chunks([mid for mid, _ in doomed]):
        session.execute(delete(Message).where(Message.mailbox_id == mailbox_id, Message.id.in_(chunk)))
    if doomed:
        folder.highestmodseq += 1  # so other sessions' wait_for_change wakes up
        expunged.remember(session, folder, [uid for _, uid in doomed])
    return sorted(uid for _, uid in doomed)


def expunged_since(session: Session | Direct, mailbox_id: int, name: str, modseq: int) -> list[int] | None:
    """UIDs expunged from the folder at a mod-sequence above ``modseq`` (VANISHED (EARLIER));
    None when the store forgot some of them (:mod:`gateway.mailstore.expunged`)."""
    return expunged.expunged_since(session, mailbox_id, folder_key(name), modseq)


_HIGHEST_MODSEQ = RawStatement("SELECT highestmodseq FROM folders WHERE mailbox_id = ? AND name = ?",
                               (Folder.__table__.c.mailbox_id, Folder.__table__.c.name))


def highest_modseq(session: Session | Direct, mailbox_id: int, name: str) -> int | None:
    row = _HIGHEST_MODSEQ.first(session, mailbox_id, folder_key(name))
    return None if row is None else int(row[0])
