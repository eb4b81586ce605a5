"""``gateway db distribute`` (issue 23): refuses on SQLite and on PostgreSQL without Citus.

The Citus path itself needs a Citus coordinator, which CI cannot install (Citus is in neither
Debian nor PyPI): it was run by hand on a 1 + 2 cluster on loopback (docs/deploy.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store import citus
from gateway.store import distribution as dist
from gateway.testing import pg
from gateway.testing.live import make_home
from tests.cli_kit import run


def test_refuses_on_sqlite(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    home = str(make_home(tmp_path / "gw", storage_url="sqlite:///gateway.db"))
    assert run(capsys, "db", "upgrade", "--home", home)[0] == 0
    code, out, err = run(capsys, "db", "distribute", "--home", home)
    assert code == 2
    assert out == ""
    assert err.splitlines() == ["gateway: error: db distribute: this database is sqlite, not PostgreSQL with Citus "
                                "(a single database needs no distribution)"]


@pytest.mark.postgres
def test_refuses_on_postgresql_without_citus(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             pg_admin: str) -> None:
    with pg.temporary_database() as url:
        home = str(make_home(tmp_path / "gw", storage_url=url))
        assert run(capsys, "db", "upgrade", "--home", home)[0] == 0  # and distributes nothing: no Citus
        for argv in (("db", "distribute"), ("db", "distribute", "--dry-run")):
            code, out, err = run(capsys, *argv, "--home", home)
            assert (code, out) == (2, "")
            assert len(err.splitlines()) == 1
            assert "has no citus extension" in err


def test_order_puts_referenced_tables_first() -> None:
    refs = {
        "messages": ["folders", "mailboxes"], "folders": ["mailboxes"], "mailboxes": [],
        "pro_accounts": ["hosted_domains"], "hosted_domains": [], "patients": ["mailboxes"],
        "login_counters": [], "alembic_version": [],
    }
    done = citus.order(refs)
    assert sorted(done) == sorted(refs)
    for table, referred in refs.items():
        for r in referred:
            assert done.index(r) < done.index(table), (r, table)
    assert done[:2] == ["hosted_domains", "pro_accounts"]  # reference tables first
    assert done.index("mailboxes") < done.index("login_counters")  # the group's anchor before the rest


def test_order_refuses_a_cycle() -> None:
    with pytest.raises(citus.CannotDistribute, match="cycle"):
        citus.order({"a": ["b"], "b": ["a"]})


def test_colocation_arguments() -> None:
    assert dist.colocate_with("mailboxes") == "none"
    assert dist.colocate_with("messages") == "mailboxes"
    assert dist.colocate_with("outbound_queue") == "none"


@pytest.mark.postgres
def test_the_schema_has_only_the_triggers_distribute_accepts(pg_admin: str) -> None:
    """Citus runs a distributed table's triggers on its shards, where a statement-level one's
    transition tables are missing (seen on 12.1): migration 0020 made the quota triggers
    row-level, and ``db distribute`` accepts exactly those (``distribution.TRIGGERS``)."""
    from sqlalchemy import inspect

    from gateway.store import migrate
    from gateway.store.db import Database

    with pg.temporary_database() as url:
        db = Database(url)
        try:
            migrate.upgrade(db.engine)
            with db.engine.connect() as conn:
                found = citus._triggers(conn, sorted(inspect(db.engine).get_table_names()))
            migrate.downgrade(db.engine, "0019")
            with db.engine.connect() as conn:
                before = citus._triggers(conn, ["messages"])
        finally:
            db.dispose()
    assert {(t, name) for t, name, _shape in found} == {(t, n) for t, names in dist.TRIGGERS.items() for n in names}
    assert {shape for _t, _n, shape in found} == {"row"}
    assert sorted((name, shape) for _t, name, shape in before) == [
        ("messages_usage_delete", "statement"), ("messages_usage_insert", "statement"),
        ("messages_usage_update", "row")]
