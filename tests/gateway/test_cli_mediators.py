"""``gateway mediator add|list|disable|enable|token`` and ``gateway patient new-code`` (issue 14)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select

from gateway.accounts import ins_index
from gateway.accounts.patients import by_ins, check_activation_code
from gateway.app.context import Location, open_services
from gateway.outbound.queue import MSG_PURPOSE
from gateway.store.models import AuditEntry, Patient, QueueEntry
from gateway.testing.audit import opened_entries
from routing.ins import mask_ins, synthetic_ins
from tests.cli_kit import new_home, run

PASSWORD = "une phrase de médiation"
_rng = random.Random(2727)


@pytest.fixture
def home(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    return new_home(capsys, tmp_path)


def audit_rows(home: str, action_prefix: str) -> list[AuditEntry]:
    svc = open_services(Location(Path(home) / "gateway.toml", Path(home), True))
    try:
        with svc.db.read() as s:
            return opened_entries(s, svc.keys, AuditEntry.action.startswith(action_prefix))
    finally:
        svc.close()


def test_help_for_every_new_command(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["mediator", "--help"], ["mediator", "add", "--help"], ["mediator", "list", "--help"],
                 ["mediator", "disable", "--help"], ["mediator", "enable", "--help"], ["mediator", "token", "--help"],
                 ["patient", "new-code", "--help"]):
        code, out, _ = run(capsys, *argv)
        assert code == 0 and "usage: gateway" in out, argv


def test_mediator_add_list_disable_enable_token(home: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--home", home, "mediator", "add", "FS-Lyon8", "--organisation",
                       "France Services Lyon 8", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, out
    secret = re.search(r"secret: ([A-Z2-7]+)", out)
    assert secret and pyotp.TOTP(secret.group(1)).now().isdigit()
    assert "otpauth://totp/" in out and PASSWORD not in out

    code, _, err = run(capsys, "--home", home, "mediator", "add", "fs-lyon8", "--password-stdin",
                       stdin=PASSWORD + "\n")
    assert code == 1 and err.startswith("gateway: error: ") and err.count("\n") == 1 and "already exists" in err
    code, _, err = run(capsys, "--home", home, "mediator", "add", "desk", "--password-stdin", stdin="short\n")
    assert code == 1 and "too short" in err
    code, _, err = run(capsys, "--home", home, "mediator", "add", "bad name", "--password-stdin",
                       stdin=PASSWORD + "\n")
    assert code == 1 and "invalid mediator name" in err

    code, out, _ = run(capsys, "--home", home, "mediator", "list", "--json")
    listed = json.loads(out)
    assert code == 0 and [(m["name"], m["organisation"], m["status"]) for m in listed] == [
        ("fs-lyon8", "France Services Lyon 8", "active")]
    code, out, _ = run(capsys, "--home", home, "mediator", "list")
    assert code == 0 and "fs-lyon8" in out and "NAME" in out

    code, out, err = run(capsys, "--home", home, "mediator", "token", "fs-lyon8", "--label", "guichet")
    assert code == 0 and out.startswith("hmgm_") and "shown once" in err
    code, out, _ = run(capsys, "--home", home, "mediator", "disable", "fs-lyon8")
    assert code == 0 and "disabled" in out
    code, out, _ = run(capsys, "--home", home, "mediator", "list", "--json")
    assert json.loads(out)[0]["status"] == "disabled"
    code, _, err = run(capsys, "--home", home, "mediator", "token", "fs-lyon8")
    assert code == 1 and "disabled" in err
    code, out, _ = run(capsys, "--home", home, "mediator", "enable", "fs-lyon8")
    assert code == 0 and "active" in out
    code, _, err = run(capsys, "--home", home, "mediator", "disable", "nobody")
    assert code == 1 and err == "gateway: error: no mediator named nobody\n"
    rows = audit_rows(home, "mediator.")
    assert all(r.subject_ref == "mediator:fs-lyon8" and r.actor.startswith("admin:cli:") for r in rows)
    assert [r.action for r in rows] == ["mediator.add", "mediator.token.create", "mediator.disable", "mediator.enable"]


def _patient(home: str, ins: str) -> Patient:
    svc = open_services(Location(Path(home) / "gateway.toml", Path(home), True))
    try:
        with svc.db.read() as s:
            row = by_ins(s, svc.keys, ins)
            assert row is not None
            s.expunge(row)
            return row
    finally:
        svc.close()


def _queued_mails(home: str) -> list[bytes]:
    svc = open_services(Location(Path(home) / "gateway.toml", Path(home), True))
    try:
        with svc.db.read() as s:
            return [svc.keys.system_by_id(s, r.data_key_id).open(MSG_PURPOSE, r.uuid, r.message_sealed)  # type: ignore[arg-type]
                    for r in s.execute(select(QueueEntry).where(QueueEntry.kind == "notification")).scalars()]
    finally:
        svc.close()


def test_patient_new_code_prints_once_or_mails(home: str, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    ins, bare, opposed = (synthetic_ins(_rng) for _ in range(3))
    code, out, _ = run(capsys, "--home", home, "patient", "add", ins, "--email", "moi@perso.example")
    first = re.search(r"activation code: (\S+)", out)
    assert code == 0 and first
    assert run(capsys, "--home", home, "patient", "add", bare, "--open")[0] == 0

    code, out, _ = run(capsys, "--home", home, "patient", "new-code", ins)
    found = re.search(r": ([A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}) \(valid until", out)
    assert code == 0 and found and mask_ins(ins) in out and ins not in out
    patient = _patient(home, ins)
    assert patient.state == "provisioned" and check_activation_code(patient, found.group(1), datetime.now(UTC), ins=ins)
    # the letter's code is replaced
    assert not check_activation_code(patient, first.group(1), datetime.now(UTC), ins=ins)

    code, out, _ = run(capsys, "--home", home, "patient", "new-code", ins, "--send")
    assert code == 0 and "queued for the personal address" in out and found.group(1) not in out
    assert not check_activation_code(_patient(home, ins), found.group(1), datetime.now(UTC), ins=ins)
    (mail,) = _queued_mails(home)
    assert b"moi@perso.example" in mail and ins.encode() not in mail

    code, _, err = run(capsys, "--home", home, "patient", "new-code", bare, "--send")
    assert code == 1 and err.count("\n") == 1 and "no personal e-mail address" in err and "without --send" in err
    code, out, _ = run(capsys, "--home", home, "patient", "new-code", bare)
    assert code == 0 and "(open)" in out

    svc = open_services(Location(Path(home) / "gateway.toml", Path(home), True))
    try:
        assert run(capsys, "--home", home, "patient", "add", opposed)[0] == 0
        with svc.db.write() as s:
            s.execute(select(Patient).where(ins_index.match(svc.keys, s, opposed))).scalar_one().state = "opposed"
    finally:
        svc.close()
    code, _, err = run(capsys, "--home", home, "patient", "new-code", opposed)
    assert code == 1 and "opposed" in err and err.startswith("gateway: error: ")
    code, _, err = run(capsys, "--home", home, "patient", "new-code", synthetic_ins(_rng))
    assert code == 1 and "no patient space" in err
    code, _, err = run(capsys, "--home", home, "patient", "new-code", "123")
    assert code == 1 and err.startswith("gateway: error: ") and err.count("\n") == 1
    issued = [(r.action, r.actor.startswith("admin:cli:"), json.loads(r.details)["delivery"])
              for r in audit_rows(home, "patient.new_code")]
    assert issued == [("patient.new_code", True, "show"), ("patient.new_code", True, "mail"),
                      ("patient.new_code", True, "show")]
