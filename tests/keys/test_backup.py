"""``gateway backup`` under load and ``gateway restore`` into a fresh home (issue 14, Backups)."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.accounts import ins_index
from gateway.store.keys import KeyService
from gateway.store.models import Folder, Message, Patient
from gateway.testing import pg
from gateway.testing.live import live_gateway, make_home
from gateway.testing.smtpclient import mailbox_messages
from gateway.testing.world import PASSWORD, World, populate
from tests.keys.kit import (
    SQLITE,
    activate,
    before_key_checks,
    cli,
    downgrade_before_key_checks,
    gateway,
    head_revision,
    imap_read,
    send,
    submission,
    web_inbox,
)
from tests.keys.test_live_reload import _provision


def patient_message_rows(session: Session, keys: KeyService, ins: str) -> list[int]:
    """Row ids of the patient's INBOX messages (the web inbox's /messages/ID pages)."""
    return [int(i) for i in session.execute(
        select(Message.id).join(Folder, Folder.id == Message.folder_id)
        .join(Patient, Patient.mailbox_id == Folder.mailbox_id)
        .where(ins_index.match(keys, session, ins), Folder.name == "INBOX")).scalars()]


def _load(port: int, ca: str, world: World, to: str, acked: list[tuple[float, str, str]], bad: list[str],
          stop: threading.Event) -> None:
    try:
        with submission(port, ca, world.pro, PASSWORD) as client:
            while not stop.is_set():
                mid, code, text = send(client, world.pro, to)
                if code == 250:
                    acked.append((time.monotonic(), to, mid))
                else:
                    bad.append(f"{code} {text}")
                time.sleep(0.03)
    except Exception as exc:
        bad.append(repr(exc))


def test_backup_under_load_then_restore_on_a_fresh_home(tmp_path: Path) -> None:
    src = make_home(tmp_path / "src", storage_url=SQLITE, extra_config="\n[web]\nlogin_delay_after = 50\n")
    world = populate(src)
    ins, code = _provision(src, 777)
    backup_file = tmp_path / "backups" / "gw.db"
    backup_file.parent.mkdir()
    acked: list[tuple[float, str, str]] = []
    bad: list[str] = []
    with live_gateway(src) as live:
        status, secret = activate(f"http://127.0.0.1:{live.port('http')}", ins, code)
        assert status == 200
        patient = f"{ins}@{world.patient_domain}"
        stop = threading.Event()
        senders = [threading.Thread(target=_load, args=(live.port("submission"), live.ca_file, world, to, acked, bad,
                                                         stop)) for to in (patient, world.colleague, patient)]
        for t in senders:
            t.start()
        try:
            deadline = time.monotonic() + 60  # the load under way first (on a busy machine it takes longer)
            while len(acked) <= 20 and not bad and time.monotonic() < deadline:
                time.sleep(0.05)
            started = time.monotonic()
            result = gateway("backup", str(backup_file), "--home", str(src))
            finished = time.monotonic()
            time.sleep(0.5)
        finally:
            stop.set()
            for t in senders:
                t.join(60)
    assert bad == []
    assert result.returncode == 0, result.stderr
    assert f"backup written to {backup_file}" in result.stdout and f"schema revision {head_revision()}" in result.stdout
    assert "does not contain the master keys" in result.stdout
    assert backup_file.stat().st_mode & 0o777 == 0o600
    assert not Path(f"{backup_file}-wal").exists()
    before = [(to, mid) for at, to, mid in acked if at < started]
    during = [(to, mid) for at, to, mid in acked if started <= at <= finished]
    assert len(before) > 20 and during, "the load did not run during the backup"

    dst = make_home(tmp_path / "dst", storage_url=SQLITE)  # a fresh home: gateway init, then the original's key file
    shutil.copy2(src / "keys" / "master.keys", dst / "keys" / "master.keys")
    result = gateway("restore", str(backup_file), "--home", str(dst))
    assert result.returncode == 0, result.stderr
    assert f"schema revision {head_revision()}" in result.stdout and "audit trail intact" in result.stdout
    assert (dst / "gateway.db").stat().st_mode & 0o777 == 0o600
    verify = gateway("audit", "verify", "--home", str(dst))
    assert verify.returncode == 0 and "audit trail intact" in verify.stdout, verify.stderr

    with live_gateway(dst) as restored:
        read = imap_read(restored.port("imap"), restored.ca_file, world.colleague, PASSWORD)
        assert read.refusals == []
        stored_for_pro = len(mailbox_messages(restored, pro=world.colleague))
        assert len(read.message_ids) == stored_for_pro  # every message there reads over IMAP
        assert {mid for to, mid in before if to == world.colleague} <= read.message_ids
        patient_messages = mailbox_messages(restored, ins=ins)
        found = {m.group(1).decode() for raw in patient_messages
                 if (m := re.search(rb"Message-ID: (<[^>]+>)", raw))}
        assert {mid for to, mid in before if to == patient} <= found
        with restored.services.db.read() as s:
            rows = patient_message_rows(s, restored.services.keys, ins)
        worst, shown = web_inbox(f"http://127.0.0.1:{restored.port('http')}", ins, secret, messages=rows)
        assert worst == 200 and shown == len(rows) == len(patient_messages)


@pytest.fixture
def small_home(tmp_path: Path) -> tuple[Path, World]:
    home = make_home(tmp_path / "home", storage_url=SQLITE)
    return home, populate(home)


def test_backup_file_is_private_whatever_the_umask_and_never_overwrites(small_home: tuple[Path, World],
                                                                      tmp_path: Path) -> None:
    home, _ = small_home
    old = os.umask(0)
    try:
        code, out, err = cli("--home", str(home), "backup", str(tmp_path))
    finally:
        os.umask(old)
    assert code == 0, err
    (made,) = tmp_path.glob("gateway-*.db")
    assert made.stat().st_mode & 0o777 == 0o600 and f"backup written to {made}" in out
    code, _, err = cli("--home", str(home), "backup", str(made))
    assert code == 1 and "already exists" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("--home", str(home), "backup", str(tmp_path / "nowhere" / "x.db"))
    assert code == 1 and "no such folder" in err


def test_restore_refusals_and_migration(small_home: tuple[Path, World], tmp_path: Path) -> None:
    home, world = small_home
    made = tmp_path / "b.db"
    assert cli("--home", str(home), "backup", str(made))[0] == 0

    fresh = make_home(tmp_path / "fresh", storage_url=SQLITE)  # its own key file: not the backup's
    code, _, err = cli("--home", str(fresh), "restore", str(made))
    assert code == 1 and "does not open master key version(s) v1" in err and len(err.strip().splitlines()) == 1
    shutil.copy2(home / "keys" / "master.keys", fresh / "keys" / "master.keys")

    code, _, err = cli("--home", str(home), "restore", str(made))  # a home with data
    assert code == 1 and "already holds data" in err and "restore only into an empty home" in err

    ahead = tmp_path / "ahead.db"
    shutil.copy2(made, ahead)
    conn = sqlite3.connect(ahead)
    with conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.close()
    code, _, err = cli("--home", str(fresh), "restore", str(ahead))
    assert code == 1 and "schema revision 9999 is newer" in err

    code, _, err = cli("--home", str(fresh), "restore", str(home / "gateway.toml"))
    assert code == 1 and "not a gateway backup" in err

    behind = tmp_path / "behind.db"  # from before the key_checks table
    shutil.copy2(made, behind)
    downgrade_before_key_checks(behind, home / "keys" / "master.keys")
    code, out, err = cli("--home", str(fresh), "restore", str(behind))
    assert code == 0, err
    assert f"schema revision {head_revision()} (migrated from {before_key_checks()})" in out
    code, out, _ = cli("--home", str(fresh), "keys", "status")
    assert code == 0 and "1        True     ok" in out
    code, out, _ = cli("--home", str(fresh), "patient", "show", world.patients["open"], "--json")
    assert code == 0 and '"state": "open"' in out


@pytest.mark.postgres
def test_backup_on_postgresql_points_to_pg_dump(pg_admin: str, tmp_path: Path) -> None:
    with pg.temporary_database("hmg_bk") as url:
        home = make_home(tmp_path / "pg", storage_url=url)
        code, _, err = cli("--home", str(home), "backup", str(tmp_path / "x.db"))
        assert code == 1 and "pg_dump" in err and "docs/deploy.md" in err and len(err.strip().splitlines()) == 1
        code, _, err = cli("--home", str(home), "restore", str(tmp_path / "x.db"))
        assert code == 1 and "pg_restore" in err
        assert not (tmp_path / "x.db").exists()
