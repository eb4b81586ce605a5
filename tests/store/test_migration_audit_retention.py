"""Migration 0014 (audit retention) on SQLite and PostgreSQL: ``audit_checkpoints`` appears;
a downgrade keeps it while it holds a checkpoint (the anchor of a pruned trail), drops it
when empty; upgrading again keeps every checkpoint and gives the models' schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import inspect

from gateway.store import audit, migrate
from gateway.store.audit_retention import RetentionPolicy, prune
from gateway.store.db import Database
from gateway.testing.store import Store

BEFORE = "0012"


def _downgrade(db: Database, revision: str) -> None:
    migrate.downgrade(db.engine, revision)


def _schema_matches_models(db: Database) -> None:
    with db.engine.connect() as conn:
        assert migrate.schema_diff(conn) == []


def test_downgrade_keeps_checkpoints_and_upgrade_takes_them_back(store: Store, tmp_path: Path) -> None:
    now = datetime(2027, 3, 1, tzinfo=UTC)
    for i in range(3):
        with store.db.write() as s:
            audit.record(s, actor="system:jobs", action="test.event", details={"i": i},
                         now=now - timedelta(days=500 - i))
    assert prune(store.db, RetentionPolicy(400, tmp_path, 100), now, actor="system:jobs").pruned == 3
    _downgrade(store.db, BEFORE)
    assert "audit_checkpoints" in inspect(store.db.engine).get_table_names()
    migrate.upgrade(store.db.engine)
    _schema_matches_models(store.db)
    with store.db.read() as s:
        report = audit.verify(s)
    assert report.ok and report.pruned == 3 and report.checkpoints == 1


def test_downgrade_drops_an_empty_table(store: Store) -> None:
    _downgrade(store.db, BEFORE)
    assert "audit_checkpoints" not in inspect(store.db.engine).get_table_names()
    migrate.upgrade(store.db.engine)
    _schema_matches_models(store.db)
