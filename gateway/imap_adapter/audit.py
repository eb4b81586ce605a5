"""Group commit of the IMAP access audit (one entry per SELECT / EXAMINE, issue 4 §5).

Each SELECT must have its audit entry committed before the client is answered. Done one
transaction per SELECT, 50 clients selecting at once queue on SQLite's single write lock
(one fsync each) while holding the worker threads other sessions need. Here the entries
queued at the same moment share one write transaction (same hash chain, same content,
one fsync); each caller's coroutine resumes only after the commit that holds its entry,
and no worker thread of the default pool waits for the lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from gateway.store import audit
from gateway.store.db import Database
from gateway.store.group_commit import GroupWriter

log = logging.getLogger("gateway.imap")


@dataclass(slots=True)
class _Entry:
    fields: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None] = field(repr=False)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return  # the waiting command was cancelled (connection closed)
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class AuditWriter:
    """SELECT / EXAMINE entries, group-committed (:class:`GroupWriter`, one thread)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._writer: GroupWriter[_Entry] = GroupWriter(self._commit, self._done, name="imap-audit-writer")

    async def record(self, *, actor: str, action: str, subject_ref: str | None, peer: str | None,
                     details: dict[str, Any]) -> None:
        """Append one entry; returns once it is committed (raises if it could not be)."""
        loop = asyncio.get_running_loop()
        entry = _Entry({"actor": actor, "action": action, "subject_ref": subject_ref, "peer": peer,
                        "details": details}, loop, loop.create_future())
        self._writer.put(entry)
        await entry.future

    def _commit(self, group: list[_Entry]) -> None:
        try:
            with self._db.write() as session:
                for entry in group:
                    audit.record(session, **entry.fields)
        except BaseException as exc:  # never leave a caller waiting
            if len(group) > 1:
                log.warning("imap audit group commit failed; retrying its %d entries one by one", len(group))
                for entry in group:
                    self._commit([entry])
                return
            self._done(group, exc)
            return
        self._done(group, None)

    @staticmethod
    def _done(group: list[_Entry], error: BaseException | None) -> None:
        for entry in group:
            with contextlib.suppress(RuntimeError):  # the session's loop is already closed
                entry.loop.call_soon_threadsafe(_settle, entry.future, error)
