"""The key file is checked against the database at start, before anything is written (issue 14, seen #3)."""

from __future__ import annotations

import gc
import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from crypto.keyring import MasterKeyring
from gateway.app.context import Location, init_home, open_services
from gateway.store import keys as keystore
from gateway.store.keyfile import InsecureKeyFile, load_keyring, write_keyring
from gateway.store.keyops import KeyCheckFailed
from gateway.store.models import DataKey, KeyCheck
from gateway.testing.live import make_home
from gateway.testing.ports import listen_env
from gateway.testing.store import Store, by_id
from gateway.testing.world import populate
from tests.keys.kit import SQLITE, cli, downgrade_before_key_checks, gateway


def _state(home: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime (ns) of every file of the home but the serve log."""
    return {str(p.relative_to(home)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(home.rglob("*")) if p.is_file() and p.name != "serve.log"}


@pytest.fixture
def used_home(tmp_path: Path) -> Path:
    home = make_home(tmp_path / "home", storage_url=SQLITE)
    populate(home)  # accounts, patients: data keys under v1
    settle(home)
    return home


def settle(home: Path) -> None:
    """No connection of this test process left on the database (so any later change is the command's)."""
    for thread in threading.enumerate():
        if thread.name == "sqlite-checkpoint":
            thread.join(10)
    gc.collect()
    conn = sqlite3.connect(home / "gateway.db")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()  # the last connection: the -wal and -shm files go


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_serve_refuses_another_installations_key_file_and_writes_nothing(used_home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    init_home(other, hostname="mx.other.test", patient_domain="patients.other.test")
    shutil.copy2(other / "keys" / "master.keys", used_home / "keys" / "master.keys")
    before = _state(used_home)
    result = gateway("serve", "--home", str(used_home), env=listen_env(), timeout=60)
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert line.startswith("gateway: error: ") and "does not open master key version(s) v1" in line
    assert "another installation" in line and "nothing was started or written" in line
    assert _state(used_home) == before, "the home changed"
    assert not Path(f"{used_home}/gateway.db-wal").exists() or Path(f"{used_home}/gateway.db-wal").stat().st_size == 0
    for argv in (["patient", "show", "253072A07300443"], ["db", "upgrade"], ["keys", "rotate"]):
        code, _, err = cli("--home", str(used_home), *argv)
        assert code == 1 and "does not open master key version(s) v1" in _one_line(err)
    assert _state(used_home) == before


def test_serve_refuses_a_key_file_others_can_read_and_writes_nothing(used_home: Path) -> None:
    key_file = used_home / "keys" / "master.keys"
    key_file.chmod(0o644)
    before = _state(used_home)
    result = gateway("serve", "--home", str(used_home), env=listen_env(), timeout=60)
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert "mode 0644: group or others can access it" in line and f"chmod 600 {key_file}" in line
    assert _state(used_home) == before
    key_file.chmod(0o640)
    code, _, err = cli("--home", str(used_home), "keys", "status")
    assert code == 1 and "mode 0640" in _one_line(err)


def test_development_switch_accepts_an_open_key_file_with_one_loud_warning(used_home: Path) -> None:
    (used_home / "keys" / "master.keys").chmod(0o644)
    result = gateway("keys", "status", "--home", str(used_home),
                     env={"GATEWAY__KEYS__ALLOW_INSECURE_KEY_FILE": "true"})
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING:")]
    assert len(warnings) == 1 and "NEVER in production" in warnings[0] and "mode 0644" in warnings[0]
    assert "VERSION" in result.stdout


def test_a_database_from_before_key_checks_is_checked_by_a_sample_then_recorded(used_home: Path,
                                                                              tmp_path: Path) -> None:
    db = used_home / "gateway.db"

    downgrade_before_key_checks(db)
    settle(used_home)
    good = (used_home / "keys" / "master.keys").read_bytes()
    write_keyring(used_home / "keys" / "master.keys", MasterKeyring({1: os.urandom(32)}))
    before = _state(used_home)
    code, _, err = cli("--home", str(used_home), "db", "upgrade")
    assert code == 1 and "v1 with a different key" in _one_line(err)
    assert _state(used_home) == before, "the schema was migrated with a wrong key file"

    (used_home / "keys" / "master.keys").write_bytes(good)
    code, out, err = cli("--home", str(used_home), "keys", "status")  # auto_migrate: to head, then check values
    assert code == 0, err
    assert "1        True     ok" in out
    svc = open_services(Location(used_home / "gateway.toml", used_home, True))
    try:
        with svc.db.read() as s:
            (row,) = s.execute(select(KeyCheck)).scalars()
            assert row.version == 1 and svc.keys.ring.verify_key_check(1, row.check_value)
    finally:
        svc.close()


def test_check_ring_and_records_on_both_databases(store: Store) -> None:
    ring = store.ring
    with store.db.write() as s:
        for _ in range(3):
            store.keys.create_mailbox(s, "patient")
    other = MasterKeyring({1: os.urandom(32)})
    with store.db.read() as s:
        report = keystore.check_ring(s, ring)
        assert report.ok and report.unrecorded == (1,)  # by a sample data key
        assert keystore.check_ring(s, other).wrong == (1,)
    with store.db.write() as s:
        assert keystore.record_checks(s, ring, [1]) == [1]
        assert keystore.record_checks(s, ring, [1]) == []
    two = ring.with_new_version()
    with store.db.write() as s:
        keystore.record_checks(s, two, [2])
    with store.db.read() as s:
        assert keystore.check_ring(s, two).ok
        report = keystore.check_ring(s, ring)  # lacks v2, which the database now uses
        assert report.missing == (2,) and "v2 not in the file" in report.problem()
        mixed = MasterKeyring({1: ring._keys[1], 2: os.urandom(32)})
        assert keystore.check_ring(s, mixed).wrong == (2,)
        assert keystore.versions_in_use(s) == [1] and keystore.active_version(s) == 2


def test_new_data_keys_use_the_recorded_version_not_a_prepared_one(store: Store) -> None:
    ring = store.ring
    with store.db.write() as s:
        keystore.record_checks(s, ring, [1])
    prepared = ring.with_new_version()  # v2 in the file, not recorded
    service = keystore.KeyService(prepared)
    with store.db.write() as s:
        mk = service.create_mailbox(s, "pro")
        assert by_id(s, DataKey, mk.data_key_id).master_version == 1  # type: ignore[union-attr]
        keystore.record_checks(s, prepared, [2])
        mk = service.create_mailbox(s, "pro")
        assert by_id(s, DataKey, mk.data_key_id).master_version == 2  # type: ignore[union-attr]


def test_key_file_mode_and_parse_errors_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    write_keyring(path, MasterKeyring({1: os.urandom(32)}))
    assert load_keyring(path).versions == (1,)
    path.chmod(0o604)
    with pytest.raises(InsecureKeyFile, match="mode 0604"):
        load_keyring(path)
    assert load_keyring(path, allow_insecure=True).versions == (1,)
    assert issubclass(KeyCheckFailed, Exception)
