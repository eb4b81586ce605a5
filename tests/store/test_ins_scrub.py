"""The SQLite scrub after an INS conversion (``gateway.accounts.ins_conversion.scrub``).

CI's PostgreSQL pass once failed ``test_db_convert_ins_and_restore_ins_commands``: the clear INS
was still in the ``-wal`` file. The TRUNCATE checkpoint of the scrub had met the gateway's own
background PASSIVE checkpoint (``gateway.store.db._Checkpointer``), and SQLite answers a
checkpoint that meets another one with SQLITE_BUSY at once, without the busy handler
(https://sqlite.org/c3ref/wal_checkpoint_v2.html). Only a reader holding an old snapshot is a
reason to give up.
"""
from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from sqlalchemy import text

from gateway.accounts.ins_conversion import scrub
from gateway.store.db import Database


def _fill(db: Database) -> None:
    with db.write() as session:
        session.execute(text("CREATE TABLE IF NOT EXISTS t (x BLOB)"))
        session.execute(text("INSERT INTO t VALUES (:x)"), [{"x": b"x" * 2000}] * 200)


def test_scrub_completes_beside_another_checkpoint(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/gateway.db")
    _fill(db)  # in WAL mode before the other connection opens
    stop = threading.Event()

    def checkpoints() -> None:  # what the background checkpointer does after each write
        other = sqlite3.connect(tmp_path / "gateway.db", isolation_level=None)
        try:
            for _ in range(100_000):
                if stop.is_set():
                    return
                other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            other.close()

    thread = threading.Thread(target=checkpoints, daemon=True)
    thread.start()
    try:
        results = []
        for _ in range(30):
            _fill(db)
            results.append(scrub(db))
    finally:
        stop.set()
        thread.join(timeout=10)
        db.dispose()
    assert all(results), f"{results.count(False)} of {len(results)} scrubs gave up"


def test_scrub_gives_up_while_a_reader_holds_an_old_snapshot(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path}/gateway.db")
    try:
        _fill(db)
        reader = sqlite3.connect(tmp_path / "gateway.db", isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM t").fetchone()  # its snapshot is held from here
            _fill(db)
            assert scrub(db, patience=0.3) is False
            reader.execute("COMMIT")
            assert scrub(db) is True
        finally:
            reader.close()
        assert (tmp_path / "gateway.db-wal").stat().st_size == 0
    finally:
        db.dispose()
