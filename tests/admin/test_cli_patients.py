"""``gateway patient list|close|delete``: streamed listing, closure and deletion on the patient's behalf."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from gateway.accounts.patients import by_ins
from gateway.mailstore.messages import append_message
from gateway.operations import patients as ops
from gateway.operations.common import cli_actor
from gateway.store import audit_links
from gateway.store.keys import KeyUnavailable
from gateway.store.models import AuditEntry, DataKey, Patient, WebSession
from gateway.testing.audit import opened_entries
from gateway.testing.world import World
from tests.admin.conftest import cli, opened


def _patient(world: World, ins: str) -> Patient:
    with opened(world.home) as svc, svc.db.read() as session:
        found = by_ins(session, svc.keys, ins)
        assert found is not None
        session.expunge(found)
        return found


def _audit(world: World, action: str) -> list[AuditEntry]:
    with opened(world.home) as svc, svc.db.read() as session:
        return opened_entries(session, svc.keys, AuditEntry.action == action)


def test_list_streams_pages_masks_the_ins_and_is_audited(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "PAGE", 2)  # several keyset pages for 4 spaces
    every = [world.patients[s] for s in ("open", "provisioned", "opposed", "closed")]
    code, out, err = cli(world.home, "patient", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "INS", "STATE", "PROVISIONED", "OPENED", "CLOSED", "DELETION"]
    assert [line.split()[2] for line in lines[1:]] == ["open", "provisioned", "opposed", "closed"]
    assert not any(ins in out for ins in every)
    assert lines[1].split()[1] == every[0][0] + "*" * 12 + every[0][-2:]

    code, out, _ = cli(world.home, "patient", "list", "--json", "--full-ins")
    listed = json.loads(out)
    assert [p["ins"] for p in listed] == every and listed[0]["activated"] is False
    assert listed[0]["opened_at"] is not None and "email" not in out

    code, out, _ = cli(world.home, "patient", "list", "--json", "--state", "opposed")
    assert [p["state"] for p in json.loads(out)] == ["opposed"]
    code, out, err = cli(world.home, "patient", "list", "--json", "--limit", "3")
    first = json.loads(out)
    assert len(first) == 3 and f"next page: --after-id {first[-1]['id']}" in err
    code, out, _ = cli(world.home, "patient", "list", "--json", "--after-id", str(first[-1]["id"]))
    assert [p["state"] for p in json.loads(out)] == ["closed"]
    code, out, _ = cli(world.home, "patient", "list", "--json", "--state", "purged")
    assert code == 0 and json.loads(out) == []
    code, _, err = cli(world.home, "patient", "list", "--limit", "0")
    assert code == 1 and err == "gateway: error: --limit: at least 1\n"
    code, _, err = cli(world.home, "patient", "list", "--state", "asleep")
    assert code == 2 and "invalid choice" in err

    listings = _audit(world, "patient.list")
    assert len(listings) == 6 and all(e.actor == cli_actor().audit_actor for e in listings)
    assert ['"full_ins":true' in e.details for e in listings] == [False, True, False, False, False, False]


def test_close_on_the_patients_behalf(world: World) -> None:
    ins = world.patients["open"]
    patient = _patient(world, ins)
    with opened(world.home) as svc, svc.db.write() as session:
        session.add(WebSession(token_hash=secrets.token_hex(32), patient_id=patient.id, mailbox_id=patient.mailbox_id,
                               stage="full", created_at=datetime.now(UTC), last_seen_at=datetime.now(UTC),
                               csrf_secret="x"))
    code, _, err = cli(world.home, "patient", "close", ins)
    assert code == 1 and "add --yes" in err and _patient(world, ins).state == "open"
    code, out, err = cli(world.home, "patient", "close", ins, "--yes")
    assert code == 0, err
    closed = _patient(world, ins)
    assert closed.state == "closed" and closed.closed_at is not None and closed.purge_after is not None
    assert closed.purge_after - closed.closed_at == timedelta(days=3653) and ins not in out
    with opened(world.home) as svc, svc.db.read() as session:
        assert session.execute(select(func.count()).select_from(WebSession)
                               .where(WebSession.patient_id == patient.id)).scalar_one() == 0
    (entry,) = _audit(world, "patient.close")
    assert entry.subject_ref == f"patient:{patient.id}" and entry.actor == cli_actor().audit_actor

    code, _, err = cli(world.home, "patient", "close", ins, "--yes")
    assert code == 1 and "the space is closed" in err
    code, _, err = cli(world.home, "patient", "close", world.patients["opposed"], "--yes")
    assert code == 1 and "the space is opposed" in err
    bad = ins[:13] + f"{(int(ins[13:]) + 1) % 100:02d}"
    code, _, err = cli(world.home, "patient", "close", bad, "--yes")
    assert code == 1 and err == "gateway: error: invalid INS (check key)\n"
    code, _, err = cli(world.home, "patient", "close", world.patients["unknown"], "--yes")
    assert code == 1 and "no patient space for INS" in err and world.patients["unknown"] not in err


def test_delete_is_recorded_then_purged_by_the_job_or_at_once(world: World) -> None:
    ins, other = world.patients["open"], world.patients["provisioned"]
    with opened(world.home) as svc, svc.db.write() as session:
        patient = by_ins(session, svc.keys, ins)
        assert patient is not None and patient.mailbox_id is not None
        append_message(session, svc.keys, patient.mailbox_id, "INBOX", b"Subject: x\r\n\r\nsecret\r\n")
        key_id, mailbox_id = svc.keys.for_mailbox(session, patient.mailbox_id).data_key_id, patient.mailbox_id
    code, _, err = cli(world.home, "patient", "delete", ins)
    assert code == 1 and "add --yes" in err and _patient(world, ins).deletion_requested_at is None
    code, out, err = cli(world.home, "patient", "delete", ins, "--yes")
    assert code == 0 and "deletion-requests job" in out, err
    requested = _patient(world, ins)
    assert requested.state == "closed" and requested.deletion_requested_at is not None
    code, _, err = cli(world.home, "patient", "delete", ins, "--yes")
    assert code == 1 and "deletion already requested" in err
    code, out, _ = cli(world.home, "jobs", "run", "deletion-requests")
    assert code == 0 and "purged 1" in out
    assert _patient(world, ins).state == "purged"
    with opened(world.home) as svc, svc.db.read() as session:
        assert session.execute(select(func.count()).select_from(DataKey)
                               .where(DataKey.mailbox_id == mailbox_id)).scalar_one() == 0
        with pytest.raises(KeyUnavailable):
            svc.keys.by_id(session, key_id, mailbox_id=mailbox_id)

    code, out, err = cli(world.home, "patient", "delete", other, "--yes", "--now")
    assert code == 0 and "purged" in out and "0 message(s)" in out, err
    assert _patient(world, other).state == "purged"
    code, _, err = cli(world.home, "patient", "delete", other, "--yes", "--now")
    assert code == 1 and "already purged" in err
    # Both spaces are purged: their keys, and with them the patient links of their audit entries, are
    # shredded (issue 20); the entries stay, and so does who acted.
    asked = _audit(world, "patient.deletion_requested")
    assert [e.subject_ref for e in asked] == [f"patient:{audit_links.SHREDDED}"] * 2
    assert {e.actor for e in asked} == {cli_actor().audit_actor}
    assert len(_audit(world, "patient.purge")) == 1
    assert cli(world.home, "audit", "verify")[0] == 0
