"""Change notifications for IMAP IDLE and open sessions (RFC 2177, RFC 3501 §5.2).

Writers call :meth:`ChangeHub.notify` after their transaction commits; readers
``await hub.wait(mailbox_id, timeout)``. In one process this is an asyncio condition
per mailbox; across nodes a PostgreSQL LISTEN/NOTIFY bridge feeds the same hub.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable

from sqlalchemy.orm import Session

from gateway.store.raw import RawStatement, dialect_name


class ChangeHub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[int, set[asyncio.Event]] = defaultdict(set)
        self._versions: dict[int, int] = {}
        self.forward: Callable[[int], None] | None = None
        """Also tell another process (an SMTP process tells the serving process:
        ``gateway.delivery.smtp_processes``)."""

    def version(self, mailbox_id: int) -> int:
        """A counter that moves whenever a change of this mailbox is announced here.

        Readers note it *before* looking at the store; while it has not moved, nothing this
        process (or, on PostgreSQL, another node through LISTEN) committed since needs a new look.
        """
        return self._versions.get(mailbox_id, 0)

    def _bump(self, mailbox_id: int) -> None:
        self._versions[mailbox_id] = self._versions.get(mailbox_id, 0) + 1

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def notify(self, mailbox_id: int) -> None:
        """Wake every waiter of this mailbox; safe to call from any thread."""
        self._bump(mailbox_id)
        if self.forward is not None:
            self.forward(mailbox_id)
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.wake_local(mailbox_id)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.wake_local, mailbox_id)

    def wake_local(self, mailbox_id: int) -> None:
        """Wake this process's waiters (call on the hub's loop)."""
        self._bump(mailbox_id)
        for event in list(self._events.get(mailbox_id, ())):
            event.set()

    async def wait(self, mailbox_id: int, timeout: float) -> bool:
        """True when the mailbox changed before the timeout."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        event = asyncio.Event()
        waiters = self._events[mailbox_id]
        waiters.add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            waiters.discard(event)
            if not waiters:
                self._events.pop(mailbox_id, None)


# --- across nodes: PostgreSQL LISTEN/NOTIFY (issue 7) ------------------------------------------

CHANNEL = "hmg_mailbox"


_NOTIFY = RawStatement("SELECT pg_notify(?, ?)", (None, None))


def announce(session: Session, mailbox_id: int) -> None:
    """Inside a writing transaction: tell every node (PostgreSQL delivers it at commit)."""
    if dialect_name(session) == "postgresql":
        _NOTIFY.execute(session, CHANNEL, str(mailbox_id))


class PgChangeListener:
    """A dedicated connection LISTENing for other nodes' changes, feeding the local hub."""

    def __init__(self, url: str, hub: ChangeHub) -> None:
        from sqlalchemy.engine import make_url

        parsed = make_url(url).set(drivername="postgresql")
        self.conninfo = parsed.render_as_string(hide_password=False)
        self.hub = hub
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def _run(self) -> None:
        import logging

        import psycopg

        log = logging.getLogger("gateway.changes")
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    delay = 0.5
                    async for note in conn.notifies():
                        if note.payload.isdigit():
                            self.hub.wake_local(int(note.payload))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection lost: reconnect with backoff, never give up
                self.listening.clear()
                log.warning("change listener reconnecting", extra={"error": type(exc).__name__})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="pg-change-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
