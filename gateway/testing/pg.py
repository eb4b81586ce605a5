"""Throw-away PostgreSQL databases on the local server for tests and benchmarks."""

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


@contextmanager
def temporary_database(prefix: str = "hmg_test") -> Iterator[str]:
    """Create an empty database, yield its URL, drop it afterwards."""
    base = admin_url()
    name = f"{prefix}_{secrets.token_hex(6)}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


_CREATED: list[str] = []


def create_database(prefix: str = "hmg_live") -> str:
    """A database that lives until the process exits (then dropped); returns its URL."""
    import atexit

    base = admin_url()
    name = f"{prefix}_{secrets.token_hex(6)}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    if not _CREATED:
        atexit.register(_drop_created)
    _CREATED.append(name)
    return base.rsplit("/", 1)[0] + "/" + name


def _drop_created() -> None:
    engine = create_engine(admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for name in _CREATED:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    except OperationalError:
        pass
    finally:
        engine.dispose()
