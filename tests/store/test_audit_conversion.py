"""Entries about a patient written before migration 0015 are sealed in batches, and the trail
still verifies (issue 20): before and after the conversion, after a purge; a change to a
converted entry or to a conversion entry breaks it; a broken trail is not converted."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update

from gateway.accounts.patients import provision
from gateway.accounts.purge import purge_patient
from gateway.operations import audit_trail
from gateway.operations.audit_trail import AuditQuery
from gateway.store import audit, audit_conversion, audit_links
from gateway.store.models import AuditEntry, Patient
from gateway.testing.store import Store, by_id
from gateway.web.patient import history
from routing.ins import synthetic_ins

NOW = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
PRO = "dr.who@clinic.test"


def _old_entry(store: Store, actor: str, action: str, subject: str | None, peer: str | None,
               details: dict[str, Any]) -> None:
    """An entry as the previous release wrote it: in clear, hashed in form 1."""
    detail_text = json.dumps(details, sort_keys=True, separators=(",", ":"))
    with store.db.write() as s:
        prev = s.execute(select(AuditEntry.hash).where(AuditEntry.partition == 0)
                         .order_by(AuditEntry.id.desc()).limit(1)).scalar() or audit.GENESIS
        at = NOW + timedelta(seconds=s.execute(select(AuditEntry.id).order_by(AuditEntry.id.desc())).scalar() or 0)
        digest = audit.entry_hash(prev, at, actor, action, subject, peer, detail_text)
        s.execute(text("INSERT INTO audit_log (partition, at, actor, action, subject_ref, peer, details, prev_hash,"
                       " hash)"
                       " VALUES (0, :at, :actor, :action, :sub, :peer, :details, :prev, :hash)"),
                  {"at": at, "actor": actor, "action": action, "sub": subject, "peer": peer, "details": detail_text,
                   "prev": prev, "hash": digest})


def _patient(store: Store, seed: int) -> tuple[int, str]:
    ins = synthetic_ins(random.Random(seed))
    with store.db.write() as s:
        done = provision(s, store.keys, ins, email=None, now=NOW, opposition_window=timedelta(days=7),
                         code_validity=timedelta(days=30), open_now=True)
        return done.patient.id, ins


def _old_trail(store: Store) -> tuple[int, str, int, str]:
    a, ins_a = _patient(store, 1)
    b, ins_b = _patient(store, 2)
    for n in range(7):
        _old_entry(store, f"pro:{PRO}", "mail.deliver", f"patient:{a}", "192.0.2.1", {"message": n, "folder": "INBOX"})
        _old_entry(store, "admin:cli", "pro.add", f"pro:x{n}@clinic.test", None, {})
        _old_entry(store, f"patient:{b}", "mail.queue", "domain:clinic.test", "198.51.100.9", {"recipients": 1})
    _old_entry(store, "anonymous", "patient.login_failed", f"patient:{b}", "203.0.113.5", {})
    return a, ins_a, b, ins_b


def _clear_links(store: Store, *ids: int) -> list[int]:
    with store.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, actor, subject_ref, peer, details FROM audit_log")).all()
    return [r[0] for r in rows for i in ids if f"patient:{i}" in " ".join(str(v) for v in r[1:])
            or ("clinic.test" in str(r[2]) and str(r[1]).startswith("patient"))]


def _verify(store: Store) -> audit.ChainReport:
    with store.db.read() as s:
        return audit.verify(s)


def test_old_entries_are_sealed_in_batches_and_the_trail_still_verifies(store: Store) -> None:
    a, ins_a, b, ins_b = _old_trail(store)
    with store.db.write() as s:  # this release writes sealed entries meanwhile
        audit.record(s, actor="admin:cli", action="admin.patient.lookup", subject_ref=f"patient:{a}", keys=store.keys)
    assert _verify(store).ok and _clear_links(store, a, b)
    done = audit_conversion.convert_all(store.db, store.keys, actor="admin:cli:test", limit=4)
    assert done.done == 15 and done.batches == 4 and done.shredded == 0
    assert _clear_links(store, a, b) == []
    with store.db.read() as s:
        assert audit_conversion.pending(s) == 0
        report = audit.verify(s)
        found_a = audit_trail.search(s, store.keys, AuditQuery(subject=ins_a))
        found_b = audit_trail.search(s, store.keys, AuditQuery(subject=ins_b))
        shown, _ = history.entries(s, store.keys, b)
    assert report.ok, report
    assert [r["action"] for r in found_a] == ["admin.patient.lookup"] + ["mail.deliver"] * 7
    assert all(r["sealed"] and r["subject"] == f"patient:{a}" for r in found_a)
    assert {(r["actor"], r["subject"], r["peer"]) for r in found_b if r["action"] == "mail.queue"} == {
        (f"patient:{b}", "domain:clinic.test", "198.51.100.9")}
    assert [e.what for e in shown] == ["Tentative de connexion échouée"]
    # Run again: nothing left; the trail is unchanged.
    assert audit_conversion.convert_all(store.db, store.keys, actor="admin:cli:test").done == 0
    # A purge shreds the converted links too; the trail still verifies.
    with store.db.write() as s:
        patient = by_id(s, Patient, a)
        assert patient is not None
        purge_patient(s, store.keys, patient, NOW + timedelta(days=2))
    store.keys.forget()
    with store.db.read() as s:
        assert audit.verify(s).ok
        after = audit_trail.search(s, store.keys, AuditQuery(subject=ins_a))
    assert len(after) == 8 and all(r["shredded"] for r in after)


def test_converting_a_purged_spaces_entries_keeps_only_the_index(store: Store) -> None:
    a, ins_a, _, _ = _old_trail(store)
    with store.db.write() as s:
        patient = by_id(s, Patient, a)
        assert patient is not None
        purge_patient(s, store.keys, patient, NOW + timedelta(days=2))
    done = audit_conversion.convert_all(store.db, store.keys, actor="admin:cli:test")
    assert done.shredded == 7
    assert _clear_links(store, a) == []
    with store.db.read() as s:
        assert audit.verify(s).ok
        assert len(audit_trail.search(s, store.keys, AuditQuery(subject=ins_a, action="mail.deliver"))) == 7


@pytest.mark.parametrize("what", ["converted", "commit", "uncommitted"])
def test_a_change_to_a_converted_or_conversion_entry_breaks_the_trail(store: Store, what: str) -> None:
    _old_trail(store)
    audit_conversion.convert_all(store.db, store.keys, actor="admin:cli:test", limit=5)
    with store.db.write() as s:
        converted = s.execute(select(AuditEntry).where(AuditEntry.hash_form == audit_links.CONVERTED_FORM)
                              .order_by(AuditEntry.id).offset(2).limit(1)).scalar_one()
        commit = s.execute(select(AuditEntry).where(AuditEntry.action == audit_links.CONVERSION_ACTION)
                           .order_by(AuditEntry.id).limit(1)).scalar_one()
        if what == "converted":
            assert converted.patient_sealed is not None
            bad = converted.id
            s.execute(update(AuditEntry).where(AuditEntry.id == bad).values(
                patient_sealed=bytes([converted.patient_sealed[0] ^ 1]) + converted.patient_sealed[1:]))
        elif what == "commit":
            bad = commit.id
            s.execute(update(AuditEntry).where(AuditEntry.id == bad).values(
                details=commit.details.replace('"rows":5', '"rows":4')))
        else:  # an entry written after the conversion made to look converted, with no commit
            audit.record(s, actor="admin:cli", action="pro.add", subject_ref="pro:late@clinic.test")
            plain = s.execute(select(AuditEntry).where(AuditEntry.action == "pro.add")
                              .order_by(AuditEntry.id.desc()).limit(1)).scalar_one()
            bad = plain.id
            s.execute(update(AuditEntry).where(AuditEntry.id == bad).values(hash_form=audit_links.CONVERTED_FORM))
    report = _verify(store)
    assert not report.ok
    if what == "converted":  # found at the last entry of its batch, which the conversion entry commits
        with store.db.read() as s:
            ends = [json.loads(d)["last_id"] for d in s.execute(select(AuditEntry.details).where(
                AuditEntry.action == audit_links.CONVERSION_ACTION).order_by(AuditEntry.id)).scalars()]
        assert report.first_bad_id == min(end for end in ends if end >= bad)
        assert report.problem is not None and "converted" in report.problem
    else:
        assert report.first_bad_id == bad
        assert report.problem is not None and ("committed" in report.problem) == (what == "uncommitted")


def test_a_trail_that_does_not_verify_is_not_converted(store: Store) -> None:
    a, _, _, _ = _old_trail(store)
    with store.db.write() as s:
        first = s.execute(select(AuditEntry).where(AuditEntry.subject_ref == f"patient:{a}")
                          .order_by(AuditEntry.id).offset(3).limit(1)).scalar_one()
        s.execute(update(AuditEntry).where(AuditEntry.id == first.id).values(actor="pro:someone@else.test"))
    with pytest.raises(audit_conversion.ConversionRefused) as refused:
        audit_conversion.convert_all(store.db, store.keys, actor="admin:cli:test", limit=2)
    assert refused.value.entry_id == first.id
    with store.db.read() as s:
        # The batches before it were converted and committed; the broken entry stays as it was.
        assert audit.verify(s).first_bad_id == first.id
