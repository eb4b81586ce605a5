"""``begin_immediate``: waits for another writer in short steps, fails on other errors."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from gateway.store.db import SQLITE_BUSY_TIMEOUT_MS, begin_immediate


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    return conn


def test_takes_the_lock_soon_after_another_writer_releases_it(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    holder, waiter = _connect(path), _connect(path)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    released = 0.0

    def release() -> None:
        nonlocal released
        time.sleep(0.35)  # SQLite's handler would try at 328 and 428 ms: 78 ms late
        holder.execute("COMMIT")
        released = time.monotonic()

    thread = threading.Thread(target=release)
    thread.start()
    begin_immediate(waiter)
    took = time.monotonic()
    thread.join()
    waiter.execute("INSERT INTO t VALUES (1)")
    waiter.execute("COMMIT")
    # ours polls every 1 ms
    assert released > 0 and took - released < 0.04
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == SQLITE_BUSY_TIMEOUT_MS


def test_gives_up_after_the_timeout_and_restores_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    holder, waiter = _connect(path), _connect(path)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        begin_immediate(waiter, timeout=0.05)
    assert not waiter.in_transaction
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == SQLITE_BUSY_TIMEOUT_MS
    holder.execute("ROLLBACK")


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    conn = _connect(tmp_path / "db.sqlite")
    conn.execute("BEGIN")
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
        begin_immediate(conn)
    assert time.monotonic() - started < 1
