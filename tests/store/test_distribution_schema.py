"""The schema distributes as ``gateway/store/distribution.py`` maps it (issue 23): the models,
and a database migrated by ``gateway db upgrade`` on SQLite and on PostgreSQL, always (since
migration 0019; the statement check of the PostgreSQL pass is still gated, tests/conftest.py).
"""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from gateway.store import distribution as dist
from gateway.store import distribution_schema as schema
from gateway.store import migrate
from gateway.store.db import Database
from gateway.store.models import Base


def test_every_model_table_is_mapped() -> None:
    missing = sorted(set(Base.metadata.tables) - set(dist.TABLES))
    assert missing == [], f"add these tables to gateway/store/distribution.py: {missing}"


def test_group_anchors_are_members_of_their_group() -> None:
    for group, anchor in dist.GROUP_ANCHORS.items():
        k = dist.TABLES[anchor]
        assert isinstance(k, dist.Distributed) and k.group == group
    for name, k in dist.distributed().items():
        assert k.group is None or k.group in dist.GROUP_ANCHORS, name


def _shape(name: str, pk: tuple[str, ...], *, uniques: tuple[tuple[str, ...], ...] = (),
           fks: tuple[schema.ForeignKeyShape, ...] = (), nullable: tuple[str, ...] = ()) -> schema.TableShape:
    cols = {c for c in pk} | {c for u in uniques for c in u} | {c for f in fks for c in f.columns} | set(nullable)
    return schema.TableShape(name, {c: c in nullable for c in cols}, pk, uniques, fks)


MAP: dict[str, dist.Kind] = {
    "box": dist.Distributed("id", "g"), "item": dist.Distributed("box_id", "g"),
    "other": dist.Distributed("key"), "ref": dist.Reference(), "loc": dist.Local(),
}


def _fk(cols: tuple[str, ...], table: str, to: tuple[str, ...], ondelete: str | None = None) -> schema.ForeignKeyShape:
    return schema.ForeignKeyShape(cols, table, to, ondelete)


def test_a_schema_that_distributes_has_no_problem() -> None:
    shapes = [
        _shape("box", ("id",), uniques=(("id", "uid"),)),
        _shape("item", ("box_id", "id"), fks=(_fk(("box_id",), "box", ("id",), "CASCADE"),
                                              _fk(("ref_id",), "ref", ("id",)))),
        _shape("other", ("key",)),
        _shape("ref", ("id",)),
    ]
    assert schema.problems(shapes, tables=MAP) == []


@pytest.mark.parametrize(("shape", "expected"), [
    (_shape("box", ("id",), uniques=(("uid",),)), "box: unique (uid) lacks 'id'"),
    (_shape("item", ("id",), nullable=("box_id",)), "item: distribution column 'box_id' is nullable"),
    (_shape("item", ("id", "box_id")), None),
    (_shape("item", ("id",)), "item: no distribution column 'box_id'"),
    (_shape("item", ("box_id", "id"), fks=(_fk(("box_id", "c"), "box", ("id", "c"), "SET NULL"),)),
     "item: foreign key (box_id, c) -> box is ON DELETE SET NULL"),
    (_shape("item", ("box_id", "id"), fks=(_fk(("other_id",), "box", ("id",)),)),
     "item: foreign key (other_id) -> box: does not map 'box_id' onto box.id"),
    (_shape("item", ("box_id", "id"), fks=(_fk(("k",), "other", ("key",)),)),
     "item: foreign key (k) -> other: distributed tables not co-located"),
    (_shape("item", ("box_id", "id"), fks=(_fk(("l",), "loc", ("id",)),)),
     "item: foreign key (l) -> loc: a distributed table points at a local table"),
    (_shape("ref", ("id",), fks=(_fk(("box_id",), "box", ("id",)),)),
     "ref: foreign key (box_id) -> box: a reference table points at a non-reference table"),
    (_shape("stray", ("id",)), "stray: not in gateway/store/distribution.py"),
])
def test_each_rule_is_reported(shape: schema.TableShape, expected: str | None) -> None:
    found = schema.problems([shape], tables=MAP, require_all=False)
    if expected is None:
        assert not any("primary key" in p for p in found), found
    else:
        assert expected in found


def test_a_mapped_table_missing_from_the_schema_is_reported() -> None:
    assert "other: in the map but not in the schema" in schema.problems([], tables=MAP)


def test_the_database_shape_is_read_like_the_models(tmp_path: object) -> None:
    """The inspector's view of a migrated SQLite database gives the same keys as the models
    for a table both define alike (a check that reads the live schema wrongly would pass)."""
    db = Database(f"sqlite:///{tmp_path}/gateway.db")
    try:
        migrate.upgrade(db.engine)
        live = {s.name: s for s in schema.from_database(inspect(db.engine))}
    finally:
        db.dispose()
    models = {s.name: s for s in schema.from_metadata(Base.metadata)}
    for name in ("ins_directory", "pro_grants", "daily_stats"):  # the mailbox group differs on SQLite (SQLITE_ONLY)
        assert live[name].primary_key == models[name].primary_key
        assert set(live[name].uniques) == set(models[name].uniques)
        assert {(f.columns, f.referred_table) for f in live[name].foreign_keys} == \
            {(f.columns, f.referred_table) for f in models[name].foreign_keys}


def test_the_models_distribute() -> None:
    found = schema.problems(schema.from_metadata(Base.metadata))
    assert found == [], "\n".join(["the models break Citus's rules:", *found])


def test_the_migrated_database_distributes(db_url: str) -> None:
    """SQLite: read through ``as_on_sqlite`` (its rowid keys stand for the models' (column, id))."""
    db = Database(db_url)
    try:
        migrate.upgrade(db.engine)
        live = schema.from_database(inspect(db.engine))
        if db.engine.dialect.name == "sqlite":
            live = schema.as_on_sqlite(live, schema.from_metadata(Base.metadata))
    finally:
        db.dispose()
    found = schema.problems(live)
    assert found == [], "\n".join(["the migrated database breaks Citus's rules:", *found])


def test_sqlite_rowid_keys_stand_only_for_the_models_keys() -> None:
    """``as_on_sqlite`` reads ``id INTEGER PRIMARY KEY`` as the models' (column, id), and nothing else."""
    models = [_shape("item", ("box_id", "id")), _shape("other", ("key",))]
    live = [_shape("item", ("id",), uniques=(("box_id", "id"), ("uid",))),
            _shape("other", ("id",), uniques=(("key",),))]
    read = {s.name: s for s in schema.as_on_sqlite(live, models)}
    assert read["item"].primary_key == ("box_id", "id")
    found = schema.problems(read.values(), tables=MAP, require_all=False)
    assert "item: unique (uid) lacks 'box_id'" in found  # only the key is read as the models'
    assert "other: primary key (id) lacks 'key'" in found  # the models' key has no id: no rowid stands for it


def test_every_allowed_fanout_names_a_function_and_a_distributed_table() -> None:
    import importlib

    for fanout in dist.FANOUTS:
        module, function = fanout.where.split(":")
        assert hasattr(importlib.import_module(module), function), fanout.where
        assert isinstance(dist.TABLES[fanout.table], dist.Distributed), fanout
        assert fanout.reason
