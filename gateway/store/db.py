"""Database engine and transactions (SQLite embedded default, PostgreSQL in production).

Two kinds of transaction: :meth:`Database.write` (SQLite: ``BEGIN IMMEDIATE``, so
read-then-write sequences such as UID allocation and the audit chain never race;
PostgreSQL: an ordinary transaction, callers lock rows explicitly) and
:meth:`Database.read`. A commit returns only once the data is durable
(SQLite WAL with ``synchronous=FULL``; PostgreSQL's default ``fsync``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Autocommit at the driver level: we issue BEGIN ourselves (SQLAlchemy pysqlite recipe).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 10, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        else:
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True)
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", self._sqlite_begin)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @staticmethod
    def _sqlite_begin(conn: Any) -> None:
        mode = conn.info.get("begin_mode", "DEFERRED")
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

    def dispose(self) -> None:
        self.engine.dispose()
