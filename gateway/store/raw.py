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
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

Processor = Callable[[Any], Any] | None
Loader = Callable[[Any], Any]


@dataclass
class Direct:
    """A pooled DBAPI connection used without an ORM session (``Database.direct_read``).

    For reads of a statement or two that need no shared snapshot: a Session, its
    connection checkout and ``BEGIN`` cost about ten times the indexed SELECT they serve.
    """

    dialect: Dialect
    driver: Any


Runner = Session | Direct


class RawStatement:
    """One SQL text with ``?`` placeholders; ``columns[i]`` types the i-th value (None: as is).

    ``results[i]``, when given, types the i-th column of rows returned by :meth:`one`,
    :meth:`first` and :meth:`all` (a timestamp comes back as the ORM would load it, not SQLite's text).
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
        self._by_dialect: dict[str, tuple[str, tuple[Processor, ...], tuple[tuple[int, Loader], ...]]] = {}

    def _compiled(self, dialect: Dialect) -> tuple[str, tuple[Processor, ...], tuple[tuple[int, Loader], ...]]:
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
            loaders = ((i, c.type.dialect_impl(dialect).result_processor(dialect, None))
                       for i, c in enumerate(self.results) if c is not None)
            found = self._by_dialect[dialect.name] = (sql, processors, tuple((i, f) for i, f in loaders if f))
        return found

    def _run(self, session: Runner, values: tuple[Any, ...]) -> tuple[Any, tuple[tuple[int, Loader], ...]]:
        dialect, driver = _driver(session)
        sql, processors, loaders = self._compiled(dialect)
        params = tuple(v if p is None or v is None else p(v) for p, v in zip(processors, values, strict=True))
        cursor = driver.cursor()
        cursor.execute(sql, params)
        return cursor, loaders

    def execute(self, session: Runner, *values: Any) -> Any:
        """Run in the session's transaction; returns the DBAPI cursor (fetch from it)."""
        return self._run(session, values)[0]

    def one(self, session: Runner, *values: Any) -> tuple[Any, ...]:
        row = self.first(session, *values)
        if row is None:
            raise LookupError("statement returned no row")
        return row

    def all(self, session: Runner, *values: Any) -> list[tuple[Any, ...]]:
        cursor, loaders = self._run(session, values)
        return [_typed(row, loaders) for row in cursor.fetchall()]

    def first(self, session: Runner, *values: Any) -> tuple[Any, ...] | None:
        cursor, loaders = self._run(session, values)
        row = cursor.fetchone()
        return None if row is None else _typed(row, loaders)


def _typed(row: Sequence[Any], loaders: tuple[tuple[int, Loader], ...]) -> tuple[Any, ...]:
    if not loaders:
        return tuple(row)
    out = list(row)
    for i, load in loaders:
        if out[i] is not None:
            out[i] = load(out[i])
    return tuple(out)


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
