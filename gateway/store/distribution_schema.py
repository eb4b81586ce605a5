"""The schema rules Citus enforces, checked against the map of :mod:`gateway.store.distribution`.

The same check reads the SQLAlchemy metadata (the models) or a live database (SQLAlchemy's
inspector, after ``gateway db upgrade``; on SQLite through :func:`as_on_sqlite`), so a
migration that drifts from the models is caught too. Rules (Citus 12 "Distributing tables",
"Creating and modifying distributed objects"):

- every table is in the map, and every table of the map exists;
- a distributed table's distribution column exists and is NOT NULL (Citus refuses a row with
  NULL there), and is part of its primary key and of every unique constraint and unique index
  (uniqueness is only enforced inside a shard);
- no foreign key is ``ON DELETE SET NULL`` / ``SET DEFAULT`` (refused between co-located
  tables; purge deletes or nulls explicitly, then shreds);
- a reference table refers to reference tables only;
- a foreign key between distributed tables joins co-located tables and maps the distribution
  column onto the distribution column;
- a distributed table refers to nothing local.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from sqlalchemy import Index, MetaData, UniqueConstraint
from sqlalchemy.engine import Inspector

from gateway.store import distribution as dist

IGNORED_ON_DELETE = ("SET NULL", "SET DEFAULT")


@dataclass(frozen=True)
class ForeignKeyShape:
    columns: tuple[str, ...]
    referred_table: str
    referred_columns: tuple[str, ...]
    ondelete: str | None


@dataclass(frozen=True)
class TableShape:
    name: str
    columns: dict[str, bool]  # name -> nullable
    primary_key: tuple[str, ...]
    uniques: tuple[tuple[str, ...], ...]  # unique constraints and unique indexes
    foreign_keys: tuple[ForeignKeyShape, ...] = field(default=())


def from_metadata(metadata: MetaData) -> list[TableShape]:
    shapes = []
    for table in metadata.sorted_tables:
        uniques: list[tuple[str, ...]] = []
        for c in table.constraints:
            if isinstance(c, UniqueConstraint):
                uniques.append(tuple(col.name for col in c.columns))
        for index in table.indexes:
            if isinstance(index, Index) and index.unique:
                uniques.append(tuple(col.name for col in index.columns))
        fks = tuple(
            ForeignKeyShape(tuple(e.parent.name for e in fk.elements), fk.referred_table.name,
                            tuple(e.column.name for e in fk.elements), fk.ondelete)
            for fk in table.foreign_key_constraints)
        shapes.append(TableShape(
            table.name, {c.name: bool(c.nullable) for c in table.columns},
            tuple(c.name for c in table.primary_key.columns), tuple(uniques), fks))
    return shapes


def from_database(inspector: Inspector) -> list[TableShape]:
    """The live schema, ``alembic_version`` included (it is in the map, as a local table)."""
    shapes = []
    for name in sorted(inspector.get_table_names()):
        uniques = [tuple(str(c) for c in u["column_names"]) for u in inspector.get_unique_constraints(name)]
        uniques += [tuple(str(c) for c in i["column_names"] if c is not None)
                    for i in inspector.get_indexes(name) if i.get("unique")]
        fks = tuple(
            ForeignKeyShape(tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]),
                            (fk.get("options") or {}).get("ondelete"))
            for fk in inspector.get_foreign_keys(name))
        shapes.append(TableShape(
            name, {str(c["name"]): bool(c["nullable"]) for c in inspector.get_columns(name)},
            tuple(inspector.get_pk_constraint(name).get("constrained_columns") or ()), tuple(uniques), fks))
    return shapes


def as_on_sqlite(live: Iterable[TableShape], models: Iterable[TableShape]) -> list[TableShape]:
    """SQLite's live schema read against the models: where the models' primary key is
    (distribution column, id) and SQLite keeps ``id INTEGER PRIMARY KEY`` instead (its rowid,
    unique over the whole table, so stronger than any key that includes it: migrations 0017,
    0018, 0019), the models' key stands for it. Any other difference stays, for
    :func:`problems` to report (a unique constraint without the column, a missing column...)."""
    keys = {m.name: m.primary_key for m in models}
    out = []
    for shape in live:
        key = keys.get(shape.name, ())
        if shape.primary_key == ("id",) and len(key) > 1 and "id" in key:
            shape = replace(shape, primary_key=key)
        out.append(shape)
    return out


def problems(shapes: Iterable[TableShape], *, tables: dict[str, dist.Kind] | None = None,
             require_all: bool = True) -> list[str]:
    """One line per rule broken, ``table: what``; empty when the schema distributes as mapped.

    ``require_all``: a table of the map missing from the schema is a problem too (the models
    and a fully migrated database hold every one; ``alembic_version`` is never in the models).
    """
    mapping = dist.TABLES if tables is None else tables
    found: list[str] = []
    seen: set[str] = set()
    for shape in shapes:
        seen.add(shape.name)
        k = mapping.get(shape.name)
        if k is None:
            found.append(f"{shape.name}: not in gateway/store/distribution.py")
            continue
        if isinstance(k, dist.Distributed):
            found += _distributed_keys(shape, k)
        for fk in shape.foreign_keys:
            found += _foreign_key(shape.name, k, fk, mapping)
    if require_all:
        found += [f"{name}: in the map but not in the schema" for name, k in mapping.items()
                  if name not in seen and not isinstance(k, dist.Local)]
    return found


def _distributed_keys(shape: TableShape, k: dist.Distributed) -> list[str]:
    col = k.column
    if col not in shape.columns:
        return [f"{shape.name}: no distribution column {col!r}"]
    found = []
    if shape.columns[col]:
        found.append(f"{shape.name}: distribution column {col!r} is nullable")
    if col not in shape.primary_key:
        found.append(f"{shape.name}: primary key ({', '.join(shape.primary_key)}) lacks {col!r}")
    for unique in sorted(set(shape.uniques)):
        if col not in unique:
            found.append(f"{shape.name}: unique ({', '.join(unique)}) lacks {col!r}")
    return found


def _foreign_key(table: str, k: dist.Kind, fk: ForeignKeyShape, mapping: dict[str, dist.Kind]) -> list[str]:
    shown = f"{table}: foreign key ({', '.join(fk.columns)}) -> {fk.referred_table}"
    found = []
    if fk.ondelete is not None and fk.ondelete.upper() in IGNORED_ON_DELETE:
        found.append(f"{shown} is ON DELETE {fk.ondelete.upper()}")
    target = mapping.get(fk.referred_table)
    if isinstance(k, dist.Reference):
        if not isinstance(target, dist.Reference):
            found.append(f"{shown}: a reference table points at a non-reference table")
    elif isinstance(k, dist.Distributed):
        if isinstance(target, dist.Distributed):
            own_group = k.group is not None and k.group == target.group
            if fk.referred_table != table and not own_group:
                found.append(f"{shown}: distributed tables not co-located")
            elif (k.column, target.column) not in zip(fk.columns, fk.referred_columns, strict=True):
                found.append(f"{shown}: does not map {k.column!r} onto {fk.referred_table}.{target.column}")
        elif not isinstance(target, dist.Reference):
            found.append(f"{shown}: a distributed table points at a local table")
    return found
