"""Schema migrations (Alembic), applied at start and by ``gateway db upgrade``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

from gateway.store import citus
from gateway.store.models import SQLITE_ONLY, Base

MIGRATIONS = Path(__file__).with_name("migrations")


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_up_to_date(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()


class ForeignKeyViolation(RuntimeError):
    """A migration left rows whose foreign key points at nothing (SQLite); it was rolled back."""


@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction for a migration run. On SQLite, with foreign key enforcement off for it.

    SQLite changes a constraint by rebuilding the table (copy, ``DROP TABLE``, rename); with
    foreign keys on, the ``DROP TABLE`` of a table others reference deletes their rows by
    cascade (https://www.sqlite.org/lang_altertable.html#otheralter, steps 1 and 10). The pragma
    only takes effect outside a transaction, so it is set before ``BEGIN``;
    ``PRAGMA foreign_key_check`` runs before the commit of a run that migrated (:func:`_run`: a
    violation rolls everything back), and enforcement is back on before the connection returns
    to the pool."""
    with engine.connect() as conn:
        driver = conn.connection.driver_connection if engine.dialect.name == "sqlite" else None
        if driver is None:
            with conn.begin():
                yield conn
            return
        driver.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                yield conn
        finally:
            driver.execute("PRAGMA foreign_keys=ON")


def _run(engine: Engine, step: Callable[[Config], None]) -> None:
    cfg = _config()
    with _transaction(engine) as conn:
        before = MigrationContext.configure(conn).get_current_revision()
        cfg.attributes["connection"] = conn
        step(cfg)
        # SQLite, after a migration ran (not at every start: the check reads every table)
        if engine.dialect.name == "sqlite" and MigrationContext.configure(conn).get_current_revision() != before:
            bad = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
            if bad:
                raise ForeignKeyViolation(f"rows pointing at nothing after the migration: {bad[:5]}")


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the migrations; on a Citus coordinator already distributed, distribute the tables
    they added (:func:`gateway.store.citus.distribute_new_tables`)."""
    _run(engine, lambda cfg: command.upgrade(cfg, revision))
    citus.distribute_new_tables(engine)


def downgrade(engine: Engine, revision: str) -> None:
    """Down to ``revision`` (tests and operators going back a release)."""
    _run(engine, lambda cfg: command.downgrade(cfg, revision))


def schema_diff(conn: Connection) -> list[Any]:
    """What differs between the database's schema and the models (empty: they match), leaving
    out what SQLite alone has (``gateway.store.models.SQLITE_ONLY``)."""
    context = MigrationContext.configure(conn, opts={
        "compare_type": True,
        "include_name": lambda name, type_, _parent: not (type_ == "index" and name in SQLITE_ONLY)})
    return list(compare_metadata(context, Base.metadata))


def autogenerate(engine: Engine, message: str) -> None:
    """Developer helper: write a new revision from the models' differences."""
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)
