"""The key file's index keys (issue 20): added once to an existing key file, checked against the
database like the master keys, rotated (and the patients re-indexed) by ``gateway keys rotate``."""

from __future__ import annotations

import shutil
import sqlite3
import stat
from pathlib import Path

from sqlalchemy import func, select

from crypto.blind_index import IndexKeyring
from gateway.accounts.patients import by_ins
from gateway.app.context import Location, open_services
from gateway.store.keyfile import load_keyring, write_keyring
from gateway.store.keys import KeyService
from gateway.store.models import IndexKeyCheck, Patient
from gateway.testing.bulkkeys import add_patients
from gateway.testing.live import make_home
from tests.keys.kit import SQLITE, cli


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_an_old_key_file_gets_index_v1_once_and_a_node_without_it_refuses(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", storage_url=SQLITE)
    key_file = home / "keys" / "master.keys"
    made = load_keyring(key_file)
    assert made.index is not None and made.index.versions == (1,)  # 'gateway init' makes one
    # As a release before issue 20 left them: no index section in the file, no index check in the database.
    old = made.with_index(None)
    write_keyring(key_file, old)
    with sqlite3.connect(home / "gateway.db") as conn:
        conn.execute("DELETE FROM index_key_checks")
    node2 = tmp_path / "node2.keys"
    shutil.copy2(key_file, node2)  # another node's copy, taken before the upgrade

    code, _, err = cli("--home", str(home), "db", "upgrade")
    assert code == 0, err
    added = load_keyring(key_file)
    assert added.index is not None and added.index.versions == (1,) and added.with_index(None) == old
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "\nindex-v1 = " in key_file.read_text()
    text = key_file.read_bytes()
    code, _, err = cli("--home", str(home), "db", "upgrade")
    assert code == 0 and key_file.read_bytes() == text, "a second start must not add another index key"
    svc = open_services(Location(home / "gateway.toml", home, True))
    try:
        with svc.db.read() as s:
            checks = s.execute(select(IndexKeyCheck)).scalars().all()
            assert [c.version for c in checks] == [1] and added.index.verify_key_check(1, checks[0].check_value)
    finally:
        svc.close()

    shutil.copy2(node2, key_file)  # the second node starts with its old copy
    code, _, err = cli("--home", str(home), "db", "upgrade")
    line = _one_line(err)
    assert code == 1 and "has no index key" in line and "index-v1" in line and "copy that file here" in line
    assert load_keyring(key_file).index is None, "the refusing node must not add an index key of its own"

    write_keyring(key_file, old.with_index(IndexKeyring.generate()))  # another installation's index key
    code, _, err = cli("--home", str(home), "patient", "show", "253072A07300443")
    line = _one_line(err)
    assert code == 1 and "index-v1" in line and "with a different key" in line


def test_keys_rotate_rotates_the_index_key_and_reindexes_every_patient(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", storage_url=SQLITE)
    svc = open_services(Location(home / "gateway.toml", home, True))
    try:
        ins = add_patients(svc.db, svc.ring, 250, batch=100)
    finally:
        svc.close()
    code, out, err = cli("--home", str(home), "keys", "rotate", "--batch-size", "60")
    assert code == 0, err
    assert "index key index-v2: re-indexed 250 patient rows" in out
    ring = load_keyring(home / "keys" / "master.keys")
    assert ring.versions == (1, 2) and ring.index is not None and ring.index.versions == (1, 2)
    svc = open_services(Location(home / "gateway.toml", home, True))
    try:
        with svc.db.read() as s:
            versions = dict(s.execute(select(Patient.ins_index_version, func.count())
                                      .group_by(Patient.ins_index_version)).tuples().all())
            assert versions == {2: 250}
            assert sorted(s.execute(select(IndexKeyCheck.version)).scalars()) == [1, 2]
            only_v2 = KeyService(ring.with_index(IndexKeyring({2: ring.index.key_bytes(2)})))
            assert all(by_ins(s, only_v2, one) is not None for one in ins[::25])
    finally:
        svc.close()
    code, out, _ = cli("--home", str(home), "keys", "status")
    index_table = out.split("\n\n")[1].splitlines()
    assert code == 0 and index_table[0].split() == ["INDEX_VERSION", "IN_FILE", "KEY_CHECK", "CURRENT", "PATIENTS"]
    assert [line.split() for line in index_table[1:]] == [["1", "True", "ok", "False", "0"],
                                                          ["2", "True", "ok", "True", "250"]]
    code, _, err = cli("--home", str(home), "keys", "retire", "--index", "index-v2")
    assert code == 1 and "index-v2 is the current index key" in err
    code, out, err = cli("--home", str(home), "keys", "retire", "--index", "1")
    assert code == 0 and "index key index-v1 removed" in out, err
    assert load_keyring(home / "keys" / "master.keys").index == IndexKeyring({2: ring.index.key_bytes(2)})
    code, out, _ = cli("--home", str(home), "patient", "show", ins[3])
    assert code == 0 and ins[3] in out


def test_db_convert_ins_and_restore_ins_commands(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home", storage_url=SQLITE)
    svc = open_services(Location(home / "gateway.toml", home, True))
    try:
        ins = add_patients(svc.db, svc.ring, 90, batch=50)
    finally:
        svc.close()
    with sqlite3.connect(home / "gateway.db") as conn:  # as a release before issue 20 stored them
        ids = [r[0] for r in conn.execute("SELECT id FROM patients ORDER BY id")]
        for patient_id, one in zip(ids, ins, strict=True):
            conn.execute("UPDATE patients SET ins = ?, ins_index = NULL, ins_index_version = NULL, ins_sealed = NULL"
                         " WHERE id = ?", (one, patient_id))
        conn.execute("DELETE FROM ins_conversion_complete")  # not complete (migration 0021 records it)
    code, out, err = cli("--home", str(home), "db", "convert-ins", "--batch-size", "40")
    assert code == 0, err
    assert "could not be truncated" not in err  # the scrub completed (tests/store/test_ins_scrub.py)
    with sqlite3.connect(home / "gateway.db") as conn:  # recorded: lookups stop looking for a clear INS
        assert conn.execute("SELECT id FROM ins_conversion_complete").fetchall() == [(1,)]
    assert "90 patient rows hold a clear INS" in out and "converted 90 rows" in out and "; 0 left" in out
    raw = b"".join(p.read_bytes() for p in home.glob("gateway.db*"))  # the file, its WAL (SQLite 'raw dump')
    assert not [one for one in ins if one.encode() in raw or one[:13].encode() in raw]
    code, out, _ = cli("--home", str(home), "patient", "show", ins[7])
    assert code == 0 and ins[7] in out
    code, _, err = cli("--home", str(home), "db", "restore-ins")
    assert code == 1 and "--yes" in err
    code, out, err = cli("--home", str(home), "db", "restore-ins", "--yes")
    assert code == 0 and "clear INS restored on 90 rows" in out, err
    with sqlite3.connect(home / "gateway.db") as conn:
        assert sorted(r[0] for r in conn.execute("SELECT ins FROM patients")) == sorted(ins)
