"""The PostgreSQL backup procedure of docs/deploy.md ("Backups"), run as written: ``pg_dump``
of a gateway database, ``pg_restore`` into a new database, the schema revision and key file
checked, the gateway started on it reads every message."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.testing import pg
from gateway.testing.live import live_gateway, make_home
from gateway.testing.smtpclient import mailbox_messages
from gateway.testing.world import PASSWORD, populate
from tests.conftest import require
from tests.keys.kit import cli, head_revision, imap_read, send, submission

pytestmark = pytest.mark.postgres


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_pg_dump_and_restore_procedure(pg_admin: str, tmp_path: Path) -> None:
    require(None if shutil.which("pg_dump") and shutil.which("pg_restore") else "not on PATH", "pg_dump/pg_restore")
    with pg.temporary_database("hmg_dump_src") as source, pg.temporary_database("hmg_dump_dst") as target:
        home = make_home(tmp_path / "src", storage_url=source)
        world = populate(home)
        sent: list[str] = []
        with live_gateway(home) as live:
            with submission(live.port("submission"), live.ca_file, world.pro, PASSWORD) as client:
                for to in (world.colleague, world.patient()) * 5:
                    mid, code, text = send(client, world.pro, to)
                    assert code == 250, text
                    sent.append(mid)
        assert cli("--home", str(home), "keys", "rotate")[0] == 0  # two key versions recorded in the dump

        dump = tmp_path / "gateway.dump"
        subprocess.run(["pg_dump", "--format=custom", f"--file={dump}", f"--dbname={_libpq(source)}"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run(["pg_restore", "--no-owner", f"--dbname={_libpq(target)}", str(dump)],
                       check=True, capture_output=True, timeout=120)

        restored = make_home(tmp_path / "restored", storage_url=target)
        # a node of the restored installation: the original key file, never taken from the dump
        wrong = cli("--home", str(restored), "db", "status")
        assert wrong[0] == 1 and "does not open master key version(s) v1, v2" in wrong[2]
        shutil.copy2(home / "keys" / "master.keys", restored / "keys" / "master.keys")
        code, out, err = cli("--home", str(restored), "db", "status")
        head = head_revision()
        assert code == 0 and f"database revision: {head}; code expects: {head}" in out, err
        code, out, err = cli("--home", str(restored), "keys", "status")
        assert code == 0 and "MISMATCH" not in out and "MISSING" not in out, err
        code, out, err = cli("--home", str(restored), "audit", "verify")
        assert code == 0 and "audit trail intact" in out, err

        with live_gateway(restored) as live:
            read = imap_read(live.port("imap"), live.ca_file, world.colleague, PASSWORD)
            assert read.refusals == [] and set(sent[0::2]) <= read.message_ids
            patient = b"".join(mailbox_messages(live, ins=world.patients["open"]))
            assert all(mid.encode() in patient for mid in sent[1::2])
