"""One memory budget for message bodies in flight in a process (issue 15 item 6).

SMTP DATA (as it arrives) and IMAP APPEND literals (when their size is announced) reserve
room here *before* their bytes are buffered, through a per-session :class:`Hold`; the room
is given back when the message is stored (or refused) and the command answered. A session
that finds no room waits up to ``wait`` seconds for others to give some back, then gets a
temporary failure (SMTP ``452 4.3.1``, IMAP ``NO [LIMIT]``). One client address (IPv6: one
/64) holds at most ``per_address`` of the budget, so one peer sending many large messages at
once leaves room for the others.

A body costs :data:`COPIES` times its size: delivery holds the received message, its
stamped copy (trace headers), its sealed copy and the sealed chunks at once; an IMAP APPEND
the literal, the parsed command's copy and the sealed copies. Measured with
``bench/budgets.py``: one 24 MB message, alone, raised the resident memory by 85 MiB (3.7
times its size), by SMTP or by APPEND; counting one copy let it grow to three times the budget. Reservations are
counted in whole :data:`STEP` units so that a growing DATA reserves every 256 KiB, not every
read.
"""

from __future__ import annotations

import asyncio

from smtp.throttle import client_key

STEP = 256 * 1024
COPIES = 4


def _rounded(size: int) -> int:
    return -(-size // STEP) * STEP


class BodyBudget:
    """Bytes reserved for bodies in memory in this process, in total and per client address."""

    def __init__(self, total: int, per_address: int, wait: float) -> None:
        self.total = total
        self.per_address = min(per_address, total)
        self.wait = wait
        self.used = 0
        self.by_key: dict[str, int] = {}
        self.peak = 0
        self._freed = asyncio.Event()

    def fits(self, key: str, size: int) -> bool:
        return self.used + size <= self.total and self.by_key.get(key, 0) + size <= self.per_address

    def could_ever_fit(self, size: int) -> bool:
        return size <= self.per_address

    def try_reserve(self, key: str, size: int) -> bool:
        if not self.fits(key, size):
            return False
        self.used += size
        self.by_key[key] = self.by_key.get(key, 0) + size
        self.peak = max(self.peak, self.used)
        return True

    async def reserve(self, key: str, size: int) -> bool:
        """Reserve ``size`` bytes for ``key``, waiting up to :attr:`wait` seconds for room."""
        if self.try_reserve(key, size):
            return True
        return await self._wait_for(key, size, reserve=True)

    async def room_for(self, key: str, size: int) -> bool:
        """Whether ``size`` bytes would fit now (waiting up to :attr:`wait`), without reserving:
        the answer to a ``SIZE=`` announced at ``MAIL FROM`` (RFC 1870 §6)."""
        if self.fits(key, size):
            return True
        return await self._wait_for(key, size, reserve=False)

    async def _wait_for(self, key: str, size: int, *, reserve: bool) -> bool:
        if not self.could_ever_fit(size) or self.wait <= 0:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while True:
            freed = self._freed
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(freed.wait(), remaining)
            except TimeoutError:
                return False
            if self.try_reserve(key, size) if reserve else self.fits(key, size):
                return True

    def release(self, key: str, size: int) -> None:
        if size <= 0:
            return
        self.used -= size
        left = self.by_key.get(key, 0) - size
        if left > 0:
            self.by_key[key] = left
        else:
            self.by_key.pop(key, None)
        freed, self._freed = self._freed, asyncio.Event()
        freed.set()  # every waiter looks again

    def hold(self, peer: str | None) -> Hold:
        return Hold(self, client_key(peer or ""))


class Hold:
    """One session's reservation: grows with :meth:`ensure`, given back with :meth:`release`."""

    __slots__ = ("budget", "held", "key")

    def __init__(self, budget: BodyBudget, key: str) -> None:
        self.budget = budget
        self.key = key
        self.held = 0

    def covers(self, size: int) -> bool:
        """Whether a body of ``size`` bytes is within what is held (its :data:`COPIES` included)."""
        return COPIES * size <= self.held

    async def ensure(self, size: int) -> bool:
        """Hold room for a body of ``size`` bytes in all (waiting as :meth:`BodyBudget.reserve`)."""
        if self.covers(size):
            return True
        more = _rounded(COPIES * size) - self.held
        if not await self.budget.reserve(self.key, more):
            return False
        self.held += more
        return True

    async def room_for(self, size: int) -> bool:
        """Whether a body of ``size`` bytes would find room (answer to ``SIZE=``), without holding it."""
        return await self.budget.room_for(self.key, COPIES * size)

    def release(self) -> None:
        held, self.held = self.held, 0
        self.budget.release(self.key, held)
