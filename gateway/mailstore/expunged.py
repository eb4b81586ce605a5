"""Expunged UIDs for ``VANISHED (EARLIER)`` (RFC 7162 §3.2.5, §3.2.6), kept for a bounded time.

Every expunge (EXPUNGE, MOVE, RENAME of INBOX) remembers its UIDs with its mod-sequence
(:func:`remember`), so a client resynchronising from a mod-sequence learns exactly what was
expunged since. Kept forever, that is one row per message a folder ever lost. The
``expunged-uids`` job (:func:`prune`) keeps each folder's newest ``imap.expunged_uids_kept``
rows and deletes older ones in bounded batches; in the same transaction it raises the folder's
``expunged_floor`` to the highest mod-sequence it deleted.

Correctness (a client must never miss an expunge): a deleted row has a mod-sequence at or
below the floor, so a client whose mod-sequence ``m`` is at or above the floor needs no
deleted row (it needs those above ``m``) and gets the exact answer. Below the floor
:func:`expunged_since` says it no longer knows (None), and the IMAP layer answers every UID
below UIDNEXT that no longer exists (:class:`imap.backend.Vanished`), which §3.2.5.2 allows.
The floor and the rows are read by one statement, so a prune committing meanwhile cannot
pair an old floor with rows already deleted.

Every statement names its folder by ``(mailbox_id, …)`` except the job's search for folders
over the bound (one indexed query per run, listed in ``gateway/store/distribution.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, delete, insert, select, update
from sqlalchemy.orm import Session

from gateway.store.db import Database
from gateway.store.models import ExpungedUid, Folder
from gateway.store.raw import RawStatement, Runner

CHUNK = 500  # UIDs per DELETE … IN (…)


def remember(session: Session, folder: Folder, uids: Sequence[int]) -> None:
    """Keep UIDs expunged from ``folder`` (row-locked by the caller) with its current
    HIGHESTMODSEQ, the mod-sequence of their expunge, and count them."""
    if not uids:
        return
    session.execute(insert(ExpungedUid), [{"mailbox_id": folder.mailbox_id, "folder_id": folder.id, "uid": u,
                                            "modseq": folder.highestmodseq} for u in uids])
    # Relative, in SQL: the job's prune may have changed the count since the folder was loaded.
    session.execute(update(Folder).where(Folder.mailbox_id == folder.mailbox_id, Folder.id == folder.id)
                    .values(expunged_count=Folder.expunged_count + len(uids))
                    .execution_options(synchronize_session=False))


_SINCE = RawStatement(
    "SELECT f.expunged_floor, e.uid FROM folders f LEFT JOIN expunged_uids e"
    " ON e.mailbox_id = f.mailbox_id AND e.folder_id = f.id AND e.modseq > ? AND f.expunged_floor <= ?"
    " WHERE f.mailbox_id = ? AND f.name = ? ORDER BY e.uid",
    (ExpungedUid.__table__.c.modseq, Folder.__table__.c.expunged_floor, Folder.__table__.c.mailbox_id,
     Folder.__table__.c.name))


def expunged_since(session: Runner, mailbox_id: int, key: str, modseq: int) -> list[int] | None:
    """UIDs expunged from folder ``key`` (its stored name) at a mod-sequence above ``modseq``,
    ascending; None when some of them may have been forgotten (``modseq`` below the folder's
    floor). A folder that does not exist has none."""
    rows = _SINCE.all(session, modseq, modseq, mailbox_id, key)
    if rows and modseq < int(rows[0][0]):
        return None
    return [int(uid) for _, uid in rows if uid is not None]


@dataclass(frozen=True)
class Bound:
    """``imap.expunged_uids_kept`` (0: keep every row) and the rows one run may delete."""

    kept: int
    per_run: int
    folders_per_run: int = 100


def _over_bound(session: Session, bound: Bound) -> list[tuple[int, int, int]]:
    """Folders holding more than ``bound.kept`` rows, the fullest first (an index range)."""
    rows = session.execute(
        select(Folder.mailbox_id, Folder.id, Folder.expunged_count).where(Folder.expunged_count > bound.kept)
        .order_by(Folder.expunged_count.desc()).limit(bound.folders_per_run)).all()
    return [(int(mb), int(fid), int(n)) for mb, fid, n in rows]


_COUNT = RawStatement("SELECT count(*) FROM expunged_uids WHERE mailbox_id = ? AND folder_id = ?",
                      (ExpungedUid.__table__.c.mailbox_id, ExpungedUid.__table__.c.folder_id))


def prune_folder(session: Session, mailbox_id: int, folder_id: int, count: int) -> int:
    """Delete the folder's ``count`` oldest rows and raise its floor to the highest
    mod-sequence among them, in the caller's transaction; the rows deleted. Run twice at
    once (two nodes), the second deletes nothing and raises the floor to where it already is."""
    rows = session.execute(
        select(ExpungedUid.uid, ExpungedUid.modseq)
        .where(ExpungedUid.mailbox_id == mailbox_id, ExpungedUid.folder_id == folder_id)
        .order_by(ExpungedUid.modseq, ExpungedUid.uid).limit(count)).all()
    if not rows:
        return 0
    highest = max(int(m) for _, m in rows)
    uids = [int(u) for u, _ in rows]
    deleted = 0
    for i in range(0, len(uids), CHUNK):
        deleted += session.execute(
            delete(ExpungedUid).where(ExpungedUid.mailbox_id == mailbox_id, ExpungedUid.folder_id == folder_id,
                                      ExpungedUid.uid.in_(uids[i:i + CHUNK]))
            .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    # The folder row is locked from here to the commit: an expunge (which locks it first) waits.
    session.execute(
        update(Folder).where(Folder.mailbox_id == mailbox_id, Folder.id == folder_id)
        .values(expunged_count=Folder.expunged_count - deleted,
                expunged_floor=case((Folder.expunged_floor < highest, highest), else_=Folder.expunged_floor))
        .execution_options(synchronize_session=False))
    if deleted < count:  # fewer rows than counted (or another node pruned them): count them again
        actual = int(_COUNT.one(session, mailbox_id, folder_id)[0])
        session.execute(update(Folder).where(Folder.mailbox_id == mailbox_id, Folder.id == folder_id)
                        .values(expunged_count=actual).execution_options(synchronize_session=False))
    return deleted


def prune(db: Database, bound: Bound) -> dict[str, int]:
    """The ``expunged-uids`` job: at most ``bound.per_run`` rows, oldest first in each folder
    over the bound. One write transaction per folder, so the job never holds two folders'
    locks (a MOVE locks its source, then its target: holding several could make a cycle)."""
    if bound.kept == 0:
        return {"folders": 0, "deleted": 0}
    with db.read() as session:
        targets = _over_bound(session, bound)
    budget, folders, deleted = bound.per_run, 0, 0
    for mailbox_id, folder_id, count in targets:
        if budget <= 0:
            break
        with db.write() as session:
            gone = prune_folder(session, mailbox_id, folder_id, min(count - bound.kept, budget))
        budget -= gone
        deleted += gone
        folders += 1 if gone else 0
    return {"folders": folders, "deleted": deleted}
