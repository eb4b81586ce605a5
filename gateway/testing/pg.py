"""Throw-away PostgreSQL databases on the local server for tests and benchmarks.

A database's name says who made it: ``PREFIX_WORKER_PID_RANDOM`` (``WORKER`` is the
pytest-xdist worker, ``gw0``..., or ``main``), unique per process and easy to trace back.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    return os.environ.get("GATEWAY_TEST_PG_URL", DEFAULT_ADMIN_URL)


def server_available(url: str | None = None) -> str | None:
    """None when the server answers, else a one-line reason."""
    engine = create_engine(url or admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0] if exc.orig else "cannot connect"
    finally:
        engine.dispose()
    return None


def _admin(statements: list[str], *, ignore_errors: bool = False) -> None:
    """Run CREATE/DROP DATABASE statements on the server's maintenance database."""
    engine = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    except OperationalError:
        if not ignore_errors:
            raise
    finally:
        engine.dispose()


def database_name(prefix: str) -> str:
    """A new name no other process or pytest-xdist worker can pick (PostgreSQL keeps 63 bytes:
    a long prefix is cut, never the part that makes the name unique)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")[:8]
    return f"{prefix[:32]}_{worker}_{os.getpid()}_{secrets.token_hex(6)}".lower()


def _new_database(prefix: str) -> tuple[str, str]:
    """Create an empty database; returns (its name, its URL)."""
    name = database_name(prefix)
    _admin([f'CREATE DATABASE "{name}"'])
    return name, admin_url().rsplit("/", 1)[0] + "/" + name


def _drop(names: list[str], *, ignore_errors: bool = False) -> None:
    _admin([f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in names], ignore_errors=ignore_errors)


@contextmanager
def temporary_database(prefix: str = "hmg_test") -> Iterator[str]:
    """Create an empty database, yield its URL, drop it afterwards."""
    name, url = _new_database(prefix)
    try:
        yield url
    finally:
        _drop([name])


_CREATED: list[str] = []
_AT_EXIT: list[bool] = []


def create_database(prefix: str = "hmg_live") -> str:
    """A database that lives until :func:`drop_created` or the process exits; returns its URL."""
    import atexit

    name, url = _new_database(prefix)
    if not _AT_EXIT:
        atexit.register(drop_created)
        _AT_EXIT.append(True)
    _CREATED.append(name)
    return url


def drop_created() -> None:
    """Drop every database :func:`create_database` made in this process (the test session's end
    calls it: a pytest-xdist worker may be ended before its ``atexit`` handlers run)."""
    names = list(_CREATED)
    _CREATED.clear()
    if names:
        _drop(names, ignore_errors=True)
