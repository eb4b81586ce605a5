"""The one "new activation code" operation (gateway.operations.recovery) on SQLite and PostgreSQL."""

from __future__ import annotations

import email
import email.policy
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from gateway.accounts.patients import check_activation_code, provision
from gateway.operations import recovery
from gateway.outbound.queue import MSG_PURPOSE
from gateway.settings import Settings
from gateway.store import audit_links
from gateway.store.models import Patient, QueueEntry
from gateway.testing.store import Store, by_id
from routing.ins import synthetic_ins

NOW = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)
SETTINGS = Settings()
_rng = random.Random(1414)


def _space(store: Store, *, state: str = "provisioned", email_address: str | None = "moi@perso.example") -> tuple[
        int, str, str]:
    """(patient id, INS, the first activation code)."""
    ins = synthetic_ins(_rng)
    with store.db.write() as s:
        done = provision(s, store.keys, ins, email=email_address, now=NOW, opposition_window=timedelta(days=42),
                         code_validity=timedelta(days=42), open_now=state != "provisioned")
        if state not in ("provisioned", "open"):
            done.patient.state = state
        return done.patient.id, ins, done.activation_code


def _patient(store: Store, pid: int) -> Patient:
    with store.db.read() as s:
        found = by_id(s, Patient, pid)
        assert found is not None
        s.expunge(found)
        return found


def _issue(store: Store, pid: int, delivery: recovery.Delivery, now: datetime = NOW) -> recovery.IssuedCode:
    with store.db.write() as s:
        patient = by_id(s, Patient, pid)
        assert patient is not None
        return recovery.issue_code(s, store.keys, patient, SETTINGS, delivery=delivery, actor="mediator:desk",
                                   via="test", peer="127.0.0.1", now=now)


def _mails(store: Store) -> list[bytes]:
    with store.db.read() as s:
        rows = list(s.execute(select(QueueEntry).where(QueueEntry.kind == "notification")
                              .order_by(QueueEntry.id)).scalars())
        out = []
        for row in rows:
            assert row.data_key_id is not None
            out.append(store.keys.system_by_id(s, row.data_key_id).open(MSG_PURPOSE, row.uuid, row.message_sealed))
        return out


def test_a_new_code_replaces_the_old_one_and_keeps_the_state(store: Store) -> None:
    pid, ins, first = _space(store)
    issued = _issue(store, pid, "show")
    patient = _patient(store, pid)
    assert issued.code and not issued.mailed and issued.state == "provisioned"
    assert patient.state == "provisioned" and patient.opened_at is None  # a provisioned space stays provisioned
    assert issued.expires_at == NOW + timedelta(days=SETTINGS.patients.activation_code_validity_days)
    assert check_activation_code(patient, issued.code, NOW, ins=ins)
    assert not check_activation_code(patient, first, NOW, ins=ins)  # the previous code no longer works
    assert _mails(store) == []

    pid2, _, _ = _space(store, state="open")
    issued2 = _issue(store, pid2, "show")
    assert _patient(store, pid2).state == "open"
    assert issued2.expires_at == NOW + timedelta(hours=SETTINGS.patients.recovery_code_validity_hours)
    with store.db.read() as s:
        found, _ = audit_links.entries_about(s, store.keys, pid, subject_only=True)
        entries = [o for e, o in found if e.action == "patient.new_code"]
    assert len(entries) == 1 and entries[0].actor == "mediator:desk" and issued.code not in entries[0].details
    assert ins not in entries[0].details


@pytest.mark.parametrize("state", ["opposed", "closed", "purged"])
def test_no_code_for_a_space_that_is_not_provisioned_or_open(store: Store, state: str) -> None:
    pid, _, _ = _space(store, state=state)
    before = _patient(store, pid)
    for delivery in ("show", "mail"):
        with pytest.raises(recovery.CodeRefused) as refused:
            _issue(store, pid, delivery)
        assert refused.value.reason == "state"
    after = _patient(store, pid)
    assert after.state == state and after.activation_code_hash == before.activation_code_hash
    assert _mails(store) == []


def test_mail_delivery_sends_only_the_code_to_the_address_on_file(store: Store) -> None:
    pid, ins, _ = _space(store, state="open", email_address="patiente@perso.example")
    issued = _issue(store, pid, "mail")
    assert issued.mailed and issued.code is None
    (raw,) = _mails(store)
    message = email.message_from_bytes(raw, policy=email.policy.default)
    body = message.get_content()
    assert message["To"] == "patiente@perso.example" and message["Auto-Submitted"] == "auto-generated"
    code = next(w for w in body.split() if w.count("-") == 2 and len(w) == 14)
    assert check_activation_code(_patient(store, pid), code, NOW, ins=ins)
    for secret in (ins.encode(), b"patients.gateway.test"):
        assert secret not in raw
    assert "http" not in body  # no link at all
    assert _patient(store, pid).code_mailed_at == NOW

    pid2, ins2, first = _space(store, state="open", email_address=None)
    with pytest.raises(recovery.CodeRefused) as refused:
        _issue(store, pid2, "mail")
    assert refused.value.reason == "no_email"
    assert check_activation_code(_patient(store, pid2), first, NOW, ins=ins2)  # nothing changed


def test_self_service_mails_once_per_interval_and_says_nothing(store: Store) -> None:
    pid, ins, _ = _space(store, state="open")
    nobody = synthetic_ins(_rng)
    no_mail, ins_no_mail, first = _space(store, state="open", email_address=None)
    opposed, ins_opposed, _ = _space(store, state="opposed")

    def ask(value: str, at: datetime) -> str:
        return recovery.self_service(store.db, store.keys, SETTINGS, value, peer="127.0.0.1", now=at)

    assert ask(nobody, NOW) == "unknown"
    assert ask(ins, NOW) == "mailed"
    assert ask(ins, NOW + timedelta(minutes=5)) == "too_soon"
    assert ask(ins_no_mail, NOW) == "no_email"
    assert ask(ins_opposed, NOW) == "state"
    assert len(_mails(store)) == 1
    interval = timedelta(minutes=SETTINGS.patients.recovery_mail_interval_minutes)
    assert ask(ins, NOW + interval) == "mailed"
    assert len(_mails(store)) == 2
    assert check_activation_code(_patient(store, no_mail), first, NOW, ins=ins_no_mail)
    with store.db.read() as s:
        def actions(p: int) -> list[tuple[str, str]]:
            found, _ = audit_links.entries_about(s, store.keys, p, subject_only=True)
            return [(o.actor, e.action) for e, o in reversed(found)]

        assert actions(pid) == [("anonymous", "patient.new_code"), ("anonymous", "patient.recovery_refused"),
                                ("anonymous", "patient.new_code")]
        assert actions(no_mail) == [("anonymous", "patient.recovery_refused")]
        assert actions(opposed) == [("anonymous", "patient.recovery_refused")]
