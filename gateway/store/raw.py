"""Hot-path statements run on the driver's own cursor, with SQLAlchemy's type processing.

Why not Core: in a group commit of 10 KiB deliveries the writer thread spent about 70 % of
its time building statements, computing cache keys and walking SQLAlchemy's ORM bulk paths
(py-spy, bench/README.md, issue 8), for seven statements that SQLite itself runs in a few
microseconds each. A :class:`RawStatement` is fixed SQL written once with ``?``
placeholders; values go through each column type's bind processor for the session's
dialect (so a timestamp is stored exactly as the ORM would store it), then straight to the
DBAPI cursor of the session's connection, inside the session's transaction.

Only plain, dialect-neutral SQL belongs here (``RETURNING`` works on SQLite ≥ 3.35 and
PostgreSQL); anything else stays in SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

Processor = Callable[[Any], Any] | None


@dataclass
class Direct:
    """A pooled DBAPI connection used without an ORM session (``Database.direct_read``).

    For reads of a statement or two that need no shared snapshot: a Session, its
    connection checkout and ``BEGIN`` cost about ten times the indexed SELECT they serve.
    """

    dialect: Dialect
    driver: Any
    info: dict[str, Any] = field(default_factory=dict)


Runner = Session | Direct


class RawStatement:
    """One SQL text with ``?`` placeholders; ``columns[i]`` types the i-th value (None: as is).

    ``results[i]``, when given, types the i-th column of returned rows for :meth:`one` and
    :meth:`first` (a timestamp comes back as the ORM would load it, not SQLite's text).
    """

    def __init__(self, sql: str, columns: Sequence[ColumnElement[Any] | None] = (),
                 results: Sequence[ColumnElement[Any] | None] = ()) -> None:
        if sql.count("?") != len(columns):
            raise ValueError("one column (or None) per placeholder")
        if "%" in sql:
            raise ValueError("'%' would be read as a placeholder by format-style drivers")
        self.sql = sql
        self.columns = tuple(columns)
        self.results = tuple(results)
        self._by_dialect: dict[str, tuple[str, tuple[Processor, ...], tuple[Processor, ...]]] = {}

    def _compiled(self, dialect: Dialect) -> tuple[str, tuple[Processor, ...], tuple[Processor, ...]]:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            if dialect.paramstyle == "qmark":
                sql = self.sql
            elif dialect.paramstyle in ("format", "pyformat"):
                sql = self.sql.replace("?", "%s")
            else:  # pragma: no cover - only sqlite3 and psycopg are supported
                raise RuntimeError(f"unsupported paramstyle {dialect.paramstyle}")
            processors = tuple(
                None if c is None else c.type.dialect_impl(dialect).bind_processor(dialect) for c in self.columns)
            loaders = tuple(
                None if c is None else c.type.dialect_impl(dialect).result_processor(dialect, None)
                for c in self.results)
            found = self._by_dialect[dialect.name] = (sql, processors, loaders)
        return found

    def execute(self, session: Runner, *values: Any) -> Any:
        """Run in the session's transaction; returns the DBAPI cursor (fetch from it)."""
        dialect, driver = _driver(session)
        sql, processors, _ = self._compiled(dialect)
        params = tuple(v if p is None or v is None else p(v) for p, v in zip(processors, values, strict=True))
        cursor = driver.cursor()
        cursor.execute(sql, params)
        return cursor

    def one(self, session: Runner, *values: Any) -> tuple[Any, ...]:
        row = self.first(session, *values)
        if row is None:
            raise LookupError("statement returned no row")
        return row

    def all(self, session: Runner, *values: Any) -> list[tuple[Any, ...]]:
        rows = self.execute(session, *values).fetchall()
        loaders = self._compiled(_driver(session)[0])[2]
        typed = [(i, f) for i, f in enumerate(loaders) if f is not None]
        if not typed:
            return [tuple(r) for r in rows]
        out = []
        for r in rows:
            row = list(r)
            for i, f in typed:
                if row[i] is not None:
                    row[i] = f(row[i])
            out.append(tuple(row))
        return out

    def first(self, session: Runner, *values: Any) -> tuple[Any, ...] | None:
        row = self.execute(session, *values).fetchone()
        if row is None:
            return None
        if not self.results:
            return tuple(row)
        loaders = self._compiled(_driver(session)[0])[2]
        return tuple(v if i >= len(loaders) or loaders[i] is None or v is None else loaders[i](v)  # type: ignore[misc]
                     for i, v in enumerate(row))


_DRIVER = "raw_driver"  # session.info key: (transaction, dialect, DBAPI connection)


def _driver(session: Runner) -> tuple[Dialect, Any]:
    """The dialect and DBAPI connection of the session's current transaction.

    Remembered per transaction (``session.connection()`` costs more than the statements it
    serves here); a new transaction looks it up again.
    """
    if isinstance(session, Direct):
        return session.dialect, session.driver
    txn = session.get_transaction()
    cached = session.info.get(_DRIVER)
    if cached is not None and txn is not None and cached[0] is txn:
        return cached[1], cached[2]
    connection = session.connection()
    found = (session.get_transaction(), connection.dialect, connection.connection.driver_connection)
    session.info[_DRIVER] = found
    return found[1], found[2]


def dialect_name(session: Runner) -> str:
    return _driver(session)[0].name
