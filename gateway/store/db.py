"""Database engine and transactions (SQLite embedded default, PostgreSQL in production).

Two kinds of transaction: :meth:`Database.write` (SQLite: ``BEGIN IMMEDIATE``, so
read-then-write sequences such as UID allocation and the audit chain never race;
PostgreSQL: an ordinary transaction, callers lock rows explicitly) and
:meth:`Database.read`. A commit returns only once the data is durable
(SQLite WAL with ``synchronous=FULL``; PostgreSQL's default ``fsync``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from gateway.store.raw import Direct

SQLITE_BUSY_TIMEOUT_MS = 30_000
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes the WAL file is truncated to after a checkpoint
CHECKPOINT_EVERY_S = 0.5  # at most one checkpoint per interval, after writes
CHECKPOINT_IDLE_S = 5.0  # the checkpointer thread ends after this long without writes


class _Checkpointer:
    """SQLite WAL checkpoints (``PASSIVE``: never blocks readers or writers) off the commit path."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cond = threading.Condition()
        self._dirty = False
        self._running = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def wrote(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._dirty = True
            if not self._running:
                self._running = True
                self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
                self._thread.start()
            else:
                self._cond.notify()

    def _run(self) -> None:
        log = logging.getLogger("gateway.store")
        while True:
            with self._cond:
                if not self._dirty and not self._closed:
                    self._cond.wait(CHECKPOINT_IDLE_S)
                if not self._dirty or self._closed:
                    self._running = False
                    return
                self._dirty = False
            try:
                conn = self.engine.raw_connection()
                try:
                    cur = conn.cursor()
                    _busy, frames, done = cur.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    # Everything copied: the next writer starts the WAL over by itself. Only when
                    # readers kept frames from being copied and the WAL grew large, force it; a
                    # TRUNCATE checkpoint makes every writer wait (issue 8: it stalled deliveries
                    # ~250 ms whenever a few 20 MiB messages had passed through the WAL).
                    if done < frames and frames * 4096 > WAL_SIZE_LIMIT:
                        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                finally:
                    conn.close()
            except Exception:  # the next write retries; the WAL only grows meanwhile
                log.warning("WAL checkpoint failed", exc_info=True)
            # At most one checkpoint per interval: writes in between do not wake it, closing does.
            with self._cond:
                self._cond.wait_for(lambda: self._closed, CHECKPOINT_EVERY_S)

    def close(self) -> None:
        """Stop the thread and wait for it: a checkpoint under way holds a pooled connection,
        which would outlive the engine's ``dispose()`` (and keep the ``-wal`` file) if the
        thread returned it afterwards."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Autocommit at the driver level: we issue BEGIN ourselves (SQLAlchemy pysqlite recipe).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    # Checkpoints run in Database's checkpointer thread, not inside a delivery's COMMIT: an
    # automatic checkpoint after a 20 MiB commit copied it into the main file (and fsync'd it)
    # while every other delivery waited behind it (bench/README.md, issue 8).
    cur.execute("PRAGMA wal_autocheckpoint=0")
    cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


BEGIN_RETRY_S = 0.001


def begin_immediate(driver: sqlite3.Connection, timeout: float = SQLITE_BUSY_TIMEOUT_MS / 1000) -> None:
    """``BEGIN IMMEDIATE``, waiting for another writer in 1 ms steps.

    SQLite's own busy handler sleeps 1, 2, 5, 10 ... then 100 ms between tries, so a writer
    that waits while another process commits a large message could oversleep the release by
    up to 100 ms (issue 8: a 20 MiB delivery and other sessions' latency with
    ``smtp.processes`` > 1). Only taking the write lock can be busy in WAL mode; the
    statements after it run with the usual ``busy_timeout``.
    """
    cur = driver.cursor()
    deadline = time.monotonic() + timeout
    cur.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                cur.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                    raise
            time.sleep(BEGIN_RETRY_S)
    finally:
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 10, echo: bool = False,
                 connect_args: dict[str, Any] | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True,
                          connect_args=connect_args or {})
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", self._sqlite_begin)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._checkpointer = _Checkpointer(self.engine) if self.is_sqlite else None
        self._loop_reader: Direct | None = None

    @staticmethod
    def _sqlite_begin(conn: Any) -> None:
        mode = conn.info.get("begin_mode", "DEFERRED")
        if mode == "IMMEDIATE":
            begin_immediate(conn.connection.driver_connection)
        else:
            conn.exec_driver_sql(f"BEGIN {mode}")

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A read-write transaction, committed durably on success, rolled back on error."""
        if self.is_sqlite:
            conn = self.engine.connect()
            conn.info["begin_mode"] = "IMMEDIATE"
            session = Session(bind=conn, expire_on_commit=False)
            try:
                with conn.begin():
                    yield session
                    session.flush()
            finally:
                session.close()
                conn.info.pop("begin_mode", None)
                conn.close()
                assert self._checkpointer is not None
                self._checkpointer.wrote()
            return
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only transaction, ended without committing; loaded objects stay usable."""
        session = self._sessions()
        try:
            yield session
        finally:
            session.close()

    @contextmanager
    def direct_read(self) -> Iterator[Direct]:
        """A pooled connection for driver-level reads (:mod:`gateway.store.raw`), no ORM session.

        Each statement sees the latest commit on its own (SQLite autocommit; PostgreSQL's
        transaction is rolled back when the connection returns to the pool).
        """
        conn = self.engine.raw_connection()
        try:
            yield Direct(self.engine.dialect, conn.driver_connection)
        finally:
            conn.close()

    def loop_reader(self) -> Direct | None:
        """SQLite only: one connection of its own for short reads on the event loop thread.

        In WAL mode a reader never waits for the writer, so an indexed read of a small row
        costs less on the loop (tens of microseconds) than the hop to a worker thread and
        back (issue 8: single-message fetch latency). Kept out of the pool so the loop never
        waits for a pooled connection. None on PostgreSQL (a network round trip belongs in
        a thread).
        """
        if not self.is_sqlite:
            return None
        if self._loop_reader is None:
            conn = self.engine.raw_connection()
            driver = conn.driver_connection
            conn.detach()  # ours for the process's life; closed by dispose()
            self._loop_reader = Direct(self.engine.dialect, driver)
        return self._loop_reader

    def dispose(self) -> None:
        if self._loop_reader is not None:
            self._loop_reader.driver.close()
            self._loop_reader = None
        if self._checkpointer is not None:
            self._checkpointer.close()
        self.engine.dispose()
