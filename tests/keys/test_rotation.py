"""Rotation in short batches: resumable, a progress display, ``--batch-size``; retiring (issue 14, seen #2)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.app.context import Location, open_services
from gateway.store import keyops, rewrap
from gateway.store import keys as keystore
from gateway.store.db import begin_immediate
from gateway.store.keyfile import load_keyring
from gateway.store.models import AuditEntry, DataKey
from gateway.testing.bulkkeys import add_patients
from gateway.testing.live import make_home
from gateway.testing.store import Store
from tests.keys.kit import SQLITE, cli


def _versions(store_db: object) -> dict[int, int]:
    with store_db.read() as s:  # type: ignore[attr-defined]
        return {int(v): int(n) for v, n in s.execute(
            select(DataKey.master_version, func.count()).group_by(DataKey.master_version)).all()}


def test_batches_resume_after_an_interruption_on_both_databases(store: Store) -> None:
    add_patients(store.db, store.ring, 1200, batch=600)
    with store.db.write() as s:
        keystore.record_checks(s, store.ring, [1])
    target_ring = store.ring.with_new_version()
    keys = keystore.KeyService(target_ring)
    with store.db.write() as s:
        keystore.record_checks(s, target_ring, [2])
        pending = rewrap.pending_counts(s, 2)
    plan = keyops.RotationPlan(2, pending, "new")
    seen = []

    def stop_after_three(batch: rewrap.BatchResult) -> None:
        seen.append(batch.rewrapped)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        keyops.run_rotation(store.db, keys.ring, plan, batch_size=100, on_batch=stop_after_three)
    assert _versions(store.db) == {1: 900, 2: 300}  # three committed batches, nothing half-done
    result = keyops.run_rotation(store.db, keys.ring, plan, batch_size=250)
    assert result.rewrapped == 900 and result.failed == [] and len(result.batches) == 4
    assert _versions(store.db) == {2: 1200}
    fresh = keystore.KeyService(target_ring)
    with store.db.read() as s:
        ids = list(s.execute(select(DataKey.id, DataKey.mailbox_id).order_by(DataKey.id)).tuples())
        for key_id, mailbox_id in ids[::97]:
            fresh.by_id(s, key_id, mailbox_id=mailbox_id)


def test_cli_rotation_rerun_continues_without_a_new_version(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", storage_url=SQLITE)
    svc = open_services(Location(home / "gateway.toml", home, True))
    try:
        add_patients(svc.db, svc.ring, 700, batch=350)
        path = svc.settings.master_key_path
        plan = keyops.plan_rotation(svc.db, svc.keys, path)
        assert plan.how == "new" and plan.target == 2 and plan.total == 700
        # interrupted after two batches of 100, as by Ctrl-C or a crash
        calls = []

        def interrupt(batch: rewrap.BatchResult) -> None:
            calls.append(batch)
            if len(calls) == 2:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            keyops.run_rotation(svc.db, svc.keys.ring, plan, batch_size=100, on_batch=interrupt)
    finally:
        svc.close()
    code, out, err = cli("--home", str(home), "keys", "rotate", "--batch-size", "150")
    assert code == 0, err
    assert "continuing the rotation to v2; 500 data keys to re-wrap in batches of 150" in out
    assert "re-wrapped 500 data keys" in out and "progress: 500/500 data keys" in err
    assert load_keyring(home / "keys" / "master.keys").versions == (1, 2)
    code, out, err = cli("--home", str(home), "keys", "rotate", "--batch-size", "0")
    assert code == 1 and "--batch-size" in err
    code, out, err = cli("--home", str(home), "keys", "rotate")  # finished: a real new rotation
    assert code == 0 and "master key v3 added" in out and "700 data keys to re-wrap" in out, err
    assert load_keyring(home / "keys" / "master.keys").versions == (1, 2, 3)
    svc = open_services(Location(home / "gateway.toml", home, True))
    try:
        assert _versions(svc.db) == {3: 700}
        with svc.db.read() as s:
            actions = list(s.execute(select(AuditEntry.action).where(AuditEntry.action.like("keys.%"))
                                     .order_by(AuditEntry.id)).scalars())
        assert actions == ["keys.rotate.start", "keys.rotate", "keys.rotate.start", "keys.rotate"]
    finally:
        svc.close()
    code, out, err = cli("--home", str(home), "keys", "rotate", "--new-version", "--prepare")
    assert code == 0 and "master key v4 added" in out
    code, out, err = cli("--home", str(home), "keys", "rotate", "--prepare")
    assert code == 0 and "master key v4 already in" in out


def test_retire_refuses_while_used_and_names_how_many(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", storage_url=SQLITE)
    svc = open_services(Location(home / "gateway.toml", home, True))
    try:
        add_patients(svc.db, svc.ring, 1234, batch=1234)
        plan = keyops.plan_rotation(svc.db, svc.keys, svc.settings.master_key_path)
        keyops.run_rotation(svc.db, svc.keys.ring, plan, batch_size=1000, passes=1,
                            on_batch=lambda b: (_ for _ in ()).throw(KeyboardInterrupt) if b else None)
    except KeyboardInterrupt:
        pass
    finally:
        svc.close()
    code, out, err = cli("--home", str(home), "keys", "retire", "1")
    assert code == 1 and err.strip() == ("gateway: error: v1 still wraps 234 data keys; run 'gateway keys rotate' "
                                         "to finish re-wrapping them, then retire it")
    code, _, err = cli("--home", str(home), "keys", "retire", "v2")
    assert code == 1 and "v2 is the current master key version" in err
    code, _, err = cli("--home", str(home), "keys", "retire", "7")
    assert code == 1 and "v7 is not in" in err
    assert cli("--home", str(home), "keys", "rotate")[0] == 0
    code, out, err = cli("--home", str(home), "keys", "retire", "v1")
    assert code == 0 and "master key v1 removed" in out, err
    assert load_keyring(home / "keys" / "master.keys").versions == (2,)
    code, out, _ = cli("--home", str(home), "keys", "status")
    assert code == 0 and out.splitlines()[1].split() == ["2", "True", "ok", "True", "1234"]
    assert cli("--home", str(home), "audit", "verify")[0] == 0


def test_rotation_never_holds_the_write_lock_long(tmp_path: Path) -> None:
    """A writer taking SQLite's write lock in a loop never waits long while 6,000 keys are re-wrapped."""
    home = make_home(tmp_path / "home", storage_url=SQLITE)
    svc = open_services(Location(home / "gateway.toml", home, True))
    try:
        add_patients(svc.db, svc.ring, 6000)
        plan = keyops.plan_rotation(svc.db, svc.keys, svc.settings.master_key_path)
        waits: list[float] = []
        stop = threading.Event()

        def writer() -> None:
            conn = sqlite3.connect(home / "gateway.db", isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, at REAL)")
            while not stop.is_set():
                t0 = time.perf_counter()
                begin_immediate(conn)
                conn.execute("INSERT INTO probe (at) VALUES (?)", (t0,))
                conn.execute("COMMIT")
                waits.append(time.perf_counter() - t0)
                time.sleep(0.002)
            conn.close()

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not waits and time.monotonic() < deadline:
                time.sleep(0.01)
            before = len(waits)
            result = keyops.run_rotation(svc.db, svc.keys.ring, plan, batch_size=500)
            during = len(waits) - before
        finally:
            stop.set()
            thread.join(30)
        assert result.rewrapped == 6000 and len(result.batches) == 12
        assert during >= 5 and max(waits) < 1.0, (during, max(waits), result.seconds)
    finally:
        svc.close()


def test_two_nodes_each_adding_their_own_version_never_rewrap_under_a_key_the_other_lacks(tmp_path: Path) -> None:
    """Node B rotates (or prepared) on its own copy while node A already recorded v2 with its key."""
    home_a = make_home(tmp_path / "a", storage_url=SQLITE)
    svc = open_services(Location(home_a / "gateway.toml", home_a, True))
    try:
        add_patients(svc.db, svc.ring, 50)
    finally:
        svc.close()
    home_b = tmp_path / "b"
    import shutil

    shutil.copytree(home_a, home_b)
    (home_b / "gateway.toml").write_text((home_b / "gateway.toml").read_text().replace(
        'url = "sqlite:///gateway.db"', f'url = "sqlite:///{home_a / "gateway.db"}"'))
    assert cli("--home", str(home_b), "keys", "rotate", "--prepare")[0] == 0  # B's own v2, not recorded
    code, out, err = cli("--home", str(home_a), "keys", "rotate")  # A adds and records its v2
    assert code == 0 and "master key v2 added" in out, err
    b_file = (home_b / "keys" / "master.keys").read_bytes()
    code, out, err = cli("--home", str(home_b), "keys", "rotate")
    assert code == 1 and "does not open master key version(s) v2" in err  # refused at start already
    assert (home_b / "keys" / "master.keys").read_bytes() == b_file

    # B read its file before A's rotation (a long-running command): refused, nothing changed
    shutil.copy2(home_a / "keys" / "master.keys", home_b / "keys" / "master.keys")
    svc_b = open_services(Location(home_b / "gateway.toml", home_b, True))  # B with A's file: fine
    b_path = home_b / "keys" / "master.keys"
    try:
        from crypto.keyring import MasterKeyring

        a_ring = svc_b.keys.ring
        for stale in (MasterKeyring({1: a_ring._keys[1]}), MasterKeyring({1: a_ring._keys[1], 2: bytes(32)})):
            svc_b.keys.ring = stale
            for attempt in (lambda: keyops.plan_rotation(svc_b.db, svc_b.keys, b_path),
                            lambda: keyops.prepare_version(svc_b.db, svc_b.keys, b_path)):
                with pytest.raises(keyops.KeyOperationError, match="does not open master key version"):
                    attempt()
            assert load_keyring(b_path) == a_ring and _versions(svc_b.db) == {2: 50}
        # and the true race: v2 recorded with another key between B's reading and its recording
        svc_b.keys.ring = a_ring
        assert keyops._record_target(svc_b.db, a_ring, 2)
        assert not keyops._record_target(svc_b.db, MasterKeyring({1: a_ring._keys[1], 2: bytes(32)}), 2)
    finally:
        svc_b.close()
