"""The command line and the admin web run the same operations (``gateway/operations``): the same
checks, the same audit entries (issue 16: admin operations were written twice)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from gateway.operations.common import cli_actor
from gateway.store.models import AuditEntry
from gateway.testing.audit import opened_entries
from gateway.testing.world import World
from tests.admin.conftest import cli, opened

CLI = Path(__file__).resolve().parents[2] / "gateway" / "app" / "cli"
NEW_INS = "253072A07300443"


def _entries(world: World, action: str) -> list[AuditEntry]:
    with opened(world.home) as svc, svc.db.read() as session:
        return opened_entries(session, svc.keys, AuditEntry.action == action)


def test_the_cli_refuses_what_the_console_refuses(world: World) -> None:
    code, _, err = cli(world.home, "domain", "trust", "add", "tiny.example", "--max-size", "10")
    assert code == 1 and "max_message_size: out of range (1024-1073741824)" in err, err
    code, _, err = cli(world.home, "domain", "trust", "add", "hopital.example")
    assert code == 1 and "already" in err
    code, _, err = cli(world.home, "pro", "add", "dr.new@clinic.test", "--password-stdin", stdin="short\n")
    assert code == 1 and "password too short (at least 12 characters)" in err
    assert _entries(world, "domain.trust.add") == [] and _entries(world, "pro.add") == []


def test_cli_actions_are_audited_as_the_operations_audit_them(world: World) -> None:
    me = cli_actor().audit_actor
    assert cli(world.home, "domain", "trust", "add", "new.example", "--description", "Nouveau")[0] == 0
    assert cli(world.home, "pro", "add", "dr.new@clinic.test")[0] == 0
    assert cli(world.home, "patient", "add", NEW_INS)[0] == 0
    for action in ("domain.trust.add", "pro.add", "patient.provision"):
        (entry,) = _entries(world, action)
        assert entry.actor == me and json.loads(entry.details)["via"] == "cli", action


def test_suspend_resume_and_remove(world: World) -> None:
    for _ in range(2):  # suspending a suspended domain changes nothing and records nothing
        code, out, _ = cli(world.home, "domain", "trust", "suspend", "Hopital.Example")
        assert code == 0 and out == "trusted domain hopital.example: suspended\n"
    assert len(_entries(world, "domain.trust.suspend")) == 1
    code, out, _ = cli(world.home, "domain", "trust", "list", "--json")
    assert {r["domain"]: r["status"] for r in json.loads(out)}["hopital.example"] == "suspended"
    assert cli(world.home, "domain", "trust", "resume", "hopital.example")[0] == 0
    assert cli(world.home, "domain", "trust", "remove", "hopital.example")[0] == 0
    code, _, err = cli(world.home, "domain", "trust", "remove", "hopital.example")
    assert code == 1 and err == "gateway: error: hopital.example is not in the trust list\n"
    code, _, err = cli(world.home, "domain", "trust", "suspend", "hopital.example")
    assert code == 1 and err == "gateway: error: hopital.example is not in the trust list\n"
    (removed,) = _entries(world, "domain.trust.remove")
    assert removed.subject_ref == "domain:hopital.example" and json.loads(removed.details)["via"] == "cli"


def test_patient_show_is_the_console_lookup(world: World) -> None:
    assert cli(world.home, "patient", "add", NEW_INS, "--open")[0] == 0
    code, out, _ = cli(world.home, "patient", "show", NEW_INS, "--json")
    info = json.loads(out)
    assert code == 0 and info["state"] == "open" and info["ins"] == NEW_INS
    assert [h["action"] for h in info["history"]][-1] == "patient.provision"
    (entry,) = _entries(world, "admin.patient.lookup")
    assert json.loads(entry.details)["via"] == "cli"
    code, _, err = cli(world.home, "patient", "show", "253072B07300470")
    assert code == 1 and err.startswith("gateway: error: no patient space for the INS 2")


# The command-line modules that write no audit entry themselves: every action they take is an
# operation's (the others act on what only the command line manages: keys, backups, admins
# and mediators at creation).
THROUGH_OPERATIONS = ("admin.py", "domains.py", "patients.py", "pros.py", "queue.py")


def test_these_commands_write_through_the_operations_only() -> None:
    for name in THROUGH_OPERATIONS:
        tree = ast.parse((CLI / name).read_text(encoding="utf-8"))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                     for a in n.names}
        assert not imported & {"gateway.store.audit", "gateway.store.models", "sqlalchemy"}, name
