"""``--help`` of the key and backup commands says how rotation reaches running processes."""

from __future__ import annotations

from tests.keys.kit import cli


def test_help_of_keys_backup_and_restore() -> None:
    code, out, _ = cli("keys", "rotate", "--help")
    assert code == 0 and "--batch-size N" in out and "--prepare" in out and "--new-version" in out
    flat = " ".join(out.split())
    for phrase in ("re-reads its key file when it meets a data key wrapped with a version it lacks",
                   "and on SIGHUP", "no restart is needed", "gateway keys rotate --prepare",
                   "copy keys/master.keys to every node", "continues with the same version",
                   "A node whose file lacks the new version keeps serving"):
        assert phrase in flat, phrase
    code, out, _ = cli("keys", "retire", "--help")
    assert code == 0 and "refused while any data key still uses it" in " ".join(out.split())
    code, out, _ = cli("keys", "status", "--help")
    assert code == 0 and "--json" in out
    code, out, _ = cli("backup", "--help")
    flat = " ".join(out.split())
    assert code == 0 and "never contains the master keys" in flat and "pg_dump" in flat and "0600" in flat
    code, out, _ = cli("restore", "--help")
    flat = " ".join(out.split())
    assert code == 0 and "empty home" in flat and "key file" in flat and "migrated" in flat
