"""Distributing the schema on a Citus coordinator (``gateway db distribute``, issue 23).

After ``gateway db upgrade`` every table of :mod:`gateway.store.distribution` becomes what the
map says: ``create_reference_table`` for reference tables, ``create_distributed_table`` with
``colocate_with`` for distributed ones (the anchor of a co-location group first, the other
members with it; a table with a key of its own co-located with nothing), in the order of their
foreign keys (a referenced table first), all in one transaction with the foreign keys dropped
and added back around it (see :func:`distribute`). Tables already in Citus's catalogue
(``pg_dist_partition``) are skipped, so it can be run again; one already distributed otherwise
than mapped is reported, never changed. Of triggers, only the row-level ones that the map lists
(``distribution.TRIGGERS``: they touch co-located rows only) are accepted, with
``citus.enable_unsafe_triggers`` set for the transaction; any other refuses the run.

On a coordinator already distributed, :func:`gateway.store.migrate.upgrade` calls
:func:`distribute` after the migrations, so a table a later migration adds is distributed too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from gateway.store import distribution as dist
from gateway.store import distribution_schema as schema
from gateway.store.opening import cause_of


class NotCitus(Exception):
    """The database is not a Citus coordinator: ``gateway db distribute`` refuses (exit status 2)."""


class CannotDistribute(Exception):
    """The schema breaks a rule Citus enforces (one line per problem after the first)."""


@dataclass(frozen=True)
class Step:
    table: str
    action: str  # "reference" | "distributed by <column>, co-located with <table|none>" | "already ..." | "missing"


def citus_version(engine: Engine) -> str:
    """The citus extension's version on a coordinator; :class:`NotCitus` otherwise."""
    if engine.dialect.name != "postgresql":
        raise NotCitus(f"this database is {engine.dialect.name}, not PostgreSQL with Citus "
                       "(a single database needs no distribution)")
    with engine.connect() as conn:
        version = conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'citus'")).scalar()
        if version is None:
            raise NotCitus("this PostgreSQL database has no citus extension (CREATE EXTENSION citus on the "
                           "coordinator first; a single PostgreSQL needs no distribution)")
        coordinator = conn.execute(text(
            "SELECT CASE WHEN to_regproc('citus_is_coordinator') IS NULL THEN true "
            "ELSE citus_is_coordinator() END")).scalar()
    if not coordinator:
        raise NotCitus("this is a Citus worker: run it against the coordinator")
    return str(version)


def _catalogue(conn: Connection) -> dict[str, tuple[str, str | None, int]]:
    """table -> (partition method: h hash, n none/reference; distribution column; co-location id)."""
    rows = conn.execute(text(  # a Citus local table (partmethod n, repmodel s) is not distributed
        "SELECT logicalrelid::regclass::text, partmethod, "
        "CASE WHEN partmethod = 'h' THEN column_to_column_name(logicalrelid, partkey) END, colocationid "
        "FROM pg_dist_partition WHERE partmethod = 'h' OR repmodel = 't'")).all()
    return {str(r[0]).strip('"'): (str(r[1]), r[2], int(r[3])) for r in rows}


def is_distributed(engine: Engine) -> bool:
    """Some table of ours is already in Citus's catalogue (``db distribute`` ran before)."""
    with engine.connect() as conn:
        known = _catalogue(conn)
    return any(name in dist.TABLES for name in known)


def order(tables: dict[str, list[str]]) -> list[str]:
    """Referenced tables before those that refer to them (``tables``: name -> referred tables);
    reference tables first, then each group's anchor before its members; ties by name."""
    def rank(name: str) -> tuple[int, str]:
        k = dist.TABLES.get(name)
        first = 0 if isinstance(k, dist.Reference) else 1 if name in dist.GROUP_ANCHORS.values() else 2
        return first, name

    done: list[str] = []
    left = dict(tables)
    while left:
        ready = sorted((n for n, refs in left.items() if all(r == n or r not in left for r in refs)), key=rank)
        if not ready:  # a cycle of foreign keys: Citus would refuse it as well
            raise CannotDistribute("foreign keys form a cycle: " + ", ".join(sorted(left)))
        done.append(ready[0])
        del left[ready[0]]
    return done


def plan(engine: Engine) -> list[Step]:
    """What :func:`distribute` does, table by table (nothing done). Checks the live schema first."""
    insp = inspect(engine)
    problems = schema.problems(schema.from_database(insp), require_all=False)
    if problems:
        raise CannotDistribute("\n".join([f"the schema breaks {len(problems)} rule(s) Citus enforces "
                                          "(gateway/store/distribution.py):", *problems]))
    present = set(insp.get_table_names())
    with engine.connect() as conn:
        known = _catalogue(conn)
        triggers = _triggers(conn, sorted(n for n in present if n not in known
                                          and not isinstance(dist.TABLES.get(n), dist.Local)))
    refused = [(t, name, shape) for t, name, shape in triggers
               if shape != "row" or name not in dist.TRIGGERS.get(t, frozenset())]
    if refused:  # Citus: "cannot distribute relation ... because it has triggers"
        raise CannotDistribute("\n".join([
            "Citus runs only the row-level triggers of gateway/store/distribution.py (TRIGGERS) on shards; "
            "these tables have others:", *(f"{t}: trigger {name} ({shape})" for t, name, shape in refused)]))
    refs = {name: [fk["referred_table"] for fk in insp.get_foreign_keys(name)]
            for name in present if not isinstance(dist.TABLES.get(name), dist.Local)}
    steps = [Step(name, "missing: a later migration adds it") for name in dist.TABLES
             if name not in present and not isinstance(dist.TABLES[name], dist.Local)]
    for name in order(refs):
        steps.append(Step(name, _action(name, known.get(name))))
    return steps


def _triggers(conn: Connection, tables: list[str]) -> list[tuple[str, str, str]]:
    """(table, trigger, "row" or "statement") of the user triggers on ``tables``; a row-level
    trigger reading transition tables counts as "statement" (Citus's shards cannot run either)."""
    rows = conn.execute(text(
        "SELECT tgrelid::regclass::text, tgname, "
        "CASE WHEN tgtype & 1 = 1 AND tgnewtable IS NULL AND tgoldtable IS NULL THEN 'row' ELSE 'statement' END "
        "FROM pg_trigger WHERE NOT tgisinternal AND tgrelid::regclass::text = ANY(:tables) ORDER BY 1, 2"),
        {"tables": tables}).all()
    return [(str(r[0]).strip('"'), str(r[1]), str(r[2])) for r in rows]


def _action(name: str, known: tuple[str, str | None, int] | None) -> str:
    k = dist.TABLES[name]
    wanted = "reference" if isinstance(k, dist.Reference) else \
        f"distributed by {k.column}, co-located with {dist.colocate_with(name)}"  # type: ignore[union-attr]
    if known is None:
        return wanted
    method, column, _colocation = known
    if isinstance(k, dist.Reference) and method == "n":
        return "already reference"
    if isinstance(k, dist.Distributed) and method == "h" and column == k.column:
        return f"already distributed by {column}"
    now = "reference" if method == "n" else f"distributed by {column}"
    raise CannotDistribute(f"{name}: already {now} in Citus, but the map says {wanted}; "
                           "undistribute_table() it by hand first")


def _foreign_keys(conn: Connection, tables: set[str]) -> list[tuple[str, str, str]]:
    """(table, name, definition) of every foreign key from or to one of ``tables``."""
    rows = conn.execute(text(
        "SELECT conrelid::regclass::text, confrelid::regclass::text, conname, pg_get_constraintdef(oid) "
        "FROM pg_constraint WHERE contype = 'f' AND connamespace = current_schema()::regnamespace "
        "ORDER BY 1, 3")).all()
    return [(str(r[0]).strip('"'), str(r[2]), str(r[3])) for r in rows
            if str(r[0]).strip('"') in tables or str(r[1]).strip('"') in tables]


def distribute(engine: Engine, *, report: Callable[[Step], None] = lambda _s: None) -> list[Step]:
    """Distribute every table of the map not distributed yet; returns the steps taken or skipped.

    One transaction: Citus refuses to distribute a table that a local table still refers to,
    and a local table that refers to one not distributed yet, so the foreign keys touching the
    tables to distribute are dropped, the tables distributed in order, and the keys added back
    (Citus then creates them shard by shard, which needs the tables co-located). Anything
    failing rolls it all back: the next run starts again from the same state.
    """
    citus_version(engine)
    steps = plan(engine)
    todo = [s for s in steps if not s.action.startswith(("already", "missing"))]
    try:
        _distribute(engine, todo)
    except DBAPIError as exc:  # the whole transaction rolled back: nothing changed
        raise CannotDistribute(f"Citus refused (nothing was changed): {cause_of(exc)}") from None
    for step in steps:
        report(step)
    return steps


# Every later connection to the database runs multi-shard statements over one connection per
# worker: Citus refuses to write a reference table in a transaction that has already read a
# distributed one in parallel ("cannot modify table "admins" because there was a parallel
# operation on a distributed table", seen when the first administrator added after a start looked
# up the system mailbox, a listed fan-out, before inserting the account). The gateway's
# multi-shard statements are the bounded fan-outs of distribution.FANOUTS: rare, and small.
SESSION_DEFAULTS = {"citus.multi_shard_modify_mode": "sequential"}


def _distribute(engine: Engine, todo: list[Step]) -> None:
    with engine.begin() as conn:
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        quote_db = engine.dialect.identifier_preparer.quote
        for name, value in SESSION_DEFAULTS.items():
            conn.execute(text(f"ALTER DATABASE {quote_db(str(database))} SET {name} TO '{value}'"))
        # DDL after distributing in the same transaction: one connection per worker, not per shard.
        conn.execute(text("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'"))
        # the row-level triggers plan() accepted (distribution.TRIGGERS): co-located rows only
        conn.execute(text("SET LOCAL citus.enable_unsafe_triggers TO on"))
        keys = _foreign_keys(conn, {s.table for s in todo})
        quote = engine.dialect.identifier_preparer.quote
        for table, name, _definition in keys:
            conn.execute(text(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}"))
        for step in todo:
            k = dist.TABLES[step.table]
            if isinstance(k, dist.Reference):
                conn.execute(text("SELECT create_reference_table(:t)"), {"t": step.table})
            else:
                assert isinstance(k, dist.Distributed)
                conn.execute(text("SELECT create_distributed_table(:t, :c, colocate_with => :w)"),
                             {"t": step.table, "c": k.column, "w": dist.colocate_with(step.table)})
        for table, name, definition in keys:
            conn.execute(text(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}"))


def distribute_new_tables(engine: Engine) -> list[Step]:
    """After migrations: on a Citus coordinator already distributed, the tables a migration
    added are distributed too (nothing on SQLite, a single PostgreSQL or a coordinator that
    ``gateway db distribute`` has not been run on)."""
    if engine.dialect.name != "postgresql":
        return []
    try:
        citus_version(engine)
    except NotCitus:
        return []
    if not is_distributed(engine):
        return []
    return [s for s in distribute(engine) if not s.action.startswith(("already", "missing"))]
