"""Group commit: work queued at the same moment goes to one writer thread as one group.

Used by SMTP deliveries (:mod:`gateway.delivery.pipeline`) and the IMAP access audit
(:mod:`gateway.imap_adapter.audit`): the caller's ``commit`` writes a whole group in one
write transaction (one fsync, one turn of SQLite's write lock) and tells each item's
waiter; how a caller waits (a thread event, an asyncio future) is its own business.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupWriter(Generic[T]):
    """One writer thread (started on demand, gone after ``IDLE_S`` without work).

    It takes every item queued at that moment (at most ``MAX_GROUP``) and calls
    ``commit(group)``; should ``commit`` raise, ``failed(group, error)`` is called so that
    no waiter is left waiting.
    """

    MAX_GROUP = 64
    IDLE_S = 2.0

    def __init__(self, commit: Callable[[list[T]], None], failed: Callable[[list[T], BaseException], None], *,
                 name: str) -> None:
        self._commit = commit
        self._failed = failed
        self._name = name
        self._jobs: deque[T] = deque()
        self._cond = threading.Condition()
        self._running = False

    def put(self, item: T) -> None:
        with self._cond:
            self._jobs.append(item)
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name=self._name, daemon=True).start()
            else:
                self._cond.notify()

    def take_more(self, group: list[T]) -> None:
        """For ``commit``, once it holds its write lock: add what was queued meanwhile to ``group``.

        In place, so that ``failed`` covers these items too. Under contention for the lock
        (another process committing) the wait itself gathers the next group.
        """
        with self._cond:
            while self._jobs and len(group) < self.MAX_GROUP:
                group.append(self._jobs.popleft())

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._jobs:
                    self._cond.wait(self.IDLE_S)
                if not self._jobs:
                    self._running = False
                    return
                group = [self._jobs.popleft() for _ in range(min(self.MAX_GROUP, len(self._jobs)))]
            try:
                self._commit(group)
            except BaseException as exc:  # never leave a caller waiting
                self._failed(group, exc)
