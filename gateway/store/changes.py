"""Change notifications for IMAP IDLE and open sessions (RFC 2177, RFC 3501 §5.2).

Writers call :meth:`ChangeHub.notify` after their transaction commits; readers
``await hub.wait(mailbox_id, timeout)``. In one process this is an asyncio condition
per mailbox; across nodes a PostgreSQL LISTEN/NOTIFY bridge feeds the same hub.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict


class ChangeHub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[int, set[asyncio.Event]] = defaultdict(set)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def notify(self, mailbox_id: int) -> None:
        """Wake every waiter of this mailbox; safe to call from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake(mailbox_id)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake, mailbox_id)

    def _wake(self, mailbox_id: int) -> None:
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
