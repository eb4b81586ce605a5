"""Opening the store with an error an operator can act on (issue 14).

Whatever stands in the way (a PostgreSQL server that does not answer, a role or database
that does not exist, an SQLite file that is missing, unwritable, corrupt or not a database
at all) becomes one :class:`StoreUnavailable` line naming the URL, password masked, and the
cause. An SQLite database this code creates is created ``0600``; SQLite gives its ``-wal``
and ``-shm`` files the database file's mode.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from gateway.store.db import Database

PG_CONNECT_TIMEOUT_S = 10
CREATE_HINT = "an empty one is created by 'gateway db upgrade'"


class StoreUnavailable(Exception):
    """The store cannot be opened or used: ``<url, password masked>: <what failed>: <cause>``."""


class _Cause(Exception):
    pass


def display_url(url: str) -> str:
    """The URL as it may be shown and logged: the password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: show only the scheme
        return url.partition("://")[0] + "://..."


def sqlite_path(url: str) -> Path | None:
    """The database file of an ``sqlite:///`` URL (None for PostgreSQL and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def cause_of(exc: BaseException) -> str:
    """The driver's own first line (psycopg adds hints on further lines), whitespace collapsed."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else orig.__class__.__name__
    return re.sub(r"\s+", " ", text)


def _check_sqlite_file(path: Path, *, create: bool) -> None:
    folder = path.parent
    if not folder.is_dir():
        raise _Cause(f"folder not found: {folder}")
    if path.is_dir():
        raise _Cause("is a folder, not a database file")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _Cause(f"folder {folder} not writable by this user (SQLite keeps {path.name}-wal and "
                     f"{path.name}-shm beside the database)")
    if not path.exists():
        if not create:
            raise _Cause(f"database file not found ({CREATE_HINT})")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        return
    if not os.access(path, os.R_OK | os.W_OK):
        raise _Cause(f"file not writable by this user (uid {os.getuid()})")


def _probe(db: Database) -> None:
    with db.engine.connect() as conn:
        if db.is_sqlite:  # reads the schema pages: "not a database" and a corrupt header show here
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one()
        else:
            conn.exec_driver_sql("SELECT 1").scalar_one()


def open_database(url: str, *, create: bool = False, **kwargs: Any) -> Database:
    """A :class:`Database` whose first connection worked; ``create``: a missing SQLite file is made (0600)."""
    shown = display_url(url)
    path = sqlite_path(url)
    try:
        if path is not None:
            _check_sqlite_file(path, create=create)
    except (_Cause, OSError) as exc:
        raise StoreUnavailable(f"{shown}: cannot open the database: {exc}") from None
    if path is None and "connect_timeout" not in url:
        kwargs.setdefault("connect_args", {"connect_timeout": PG_CONNECT_TIMEOUT_S})
    db = Database(url, **kwargs)
    try:
        with store_errors(url, "cannot open the database"):
            _probe(db)
    except BaseException:
        db.dispose()
        raise
    return db


@contextmanager
def store_errors(url: str, doing: str, *, only_operational: bool = False) -> Iterator[None]:
    """Turn the driver's errors inside the block into one :class:`StoreUnavailable` line.

    ``only_operational``: only what the operator can act on (server gone, disk full, file
    locked or unwritable: :class:`~sqlalchemy.exc.OperationalError`); a constraint
    violation is a bug and keeps its traceback.
    """
    try:
        yield
    except DBAPIError as exc:
        if only_operational and not isinstance(exc, OperationalError):
            raise
        raise StoreUnavailable(f"{display_url(url)}: {doing}: {cause_of(exc)}") from None
