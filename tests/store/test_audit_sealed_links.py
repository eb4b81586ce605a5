"""Audit entries about a patient keep no patient–professional link in clear (issue 20).

A delivery from a professional to a patient, the patient's reply and a read receipt leave
rows where the patient reference, the correspondent, the peer and the details are sealed under
the patient's data key; the patient's history, the admin's patient page and the audit search by
INS still find them (keyed index) and open them; the chain verifies before and after the
patient's purge (which shreds the links), and tampering with the sealed bytes breaks it.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, select, text, update

from gateway.accounts.patients import provision
from gateway.accounts.purge import purge_patient
from gateway.delivery.directory import LocalTarget, RemoteTarget
from gateway.delivery.pipeline import Inbound, Pipeline, Rcpt
from gateway.operations import audit_trail, people
from gateway.operations.audit_trail import AuditQuery
from gateway.store import audit, audit_links
from gateway.store.changes import ChangeHub
from gateway.store.models import AuditEntry, Patient
from gateway.testing.store import Store, by_id
from gateway.web.patient import history
from routing.address import parse_address
from routing.ins import synthetic_ins

NOW = datetime(2027, 2, 8, 9, 0, tzinfo=UTC)
PRO = "dr.house@clinic.test"
PERSONAL = "someone@home.example"


@dataclass
class World:
    store: Store
    pipeline: Pipeline
    patient_id: int
    mailbox_id: int
    ins: str


def _patient(store: Store, seed: int, email: str | None = PERSONAL) -> tuple[int, int, str]:
    ins = synthetic_ins(random.Random(seed))
    with store.db.write() as s:
        done = provision(s, store.keys, ins, email=email, now=NOW, opposition_window=timedelta(days=7),
                         code_validity=timedelta(days=30), open_now=True)
        return done.patient.id, int(done.patient.mailbox_id or 0), ins


def _message(n: int) -> bytes:
    return (f"From: {PRO}\r\nTo: x@patients.test\r\nSubject: result {n}\r\nMessage-ID: <m{n}@clinic.test>\r\n"
            "\r\nhello\r\n").encode()


@pytest.fixture
def world(store: Store) -> World:
    pid, mailbox_id, ins = _patient(store, 7)
    pipeline = Pipeline(store.db, store.keys, ChangeHub(), hostname="mx.test", notification_interval=None)
    target = LocalTarget(mailbox_id, "patient", pid)
    # A professional writes to the patient (SMTP submission), twice.
    inbound = Inbound(mail_from=parse_address(PRO), recipients=(Rcpt(parse_address("x@patients.test"), target),),
                      actor=f"pro:{PRO}", protocol="ESMTPSA", sender_is_professional=True, peer="192.0.2.10")
    for n in range(2):
        pipeline.deliver_sync(inbound, _message(n), now=NOW + timedelta(minutes=n))
    # The patient replies from the web inbox: a copy in Sent, the message queued for the clinic.
    reply = Inbound(mail_from=parse_address(f"{ins}@patients.test"),
                    recipients=(Rcpt(parse_address(PRO), RemoteTarget("clinic.test")),), actor=f"patient:{pid}",
                    protocol="HTTP", sender_is_professional=False, peer="198.51.100.7", sent_copy=target)
    pipeline.deliver_sync(reply, _message(9), now=NOW + timedelta(minutes=5))
    with store.db.write() as s:  # a read receipt, as the web inbox records it
        audit.record(s, actor="system", action="patient.mdn_sent", subject_ref=f"patient:{pid}",
                     details={"message": 1, "recipients": 1, "to": PRO}, keys=store.keys)
    return World(store, pipeline, pid, mailbox_id, ins)


def _cells(store: Store) -> list[tuple[dict[str, Any], str]]:
    """Every audit row, and its every column as text (bytes decoded byte for byte)."""
    out = []
    with store.db.engine.connect() as conn:
        for row in conn.execute(text("SELECT * FROM audit_log ORDER BY id")).mappings():
            values = [bytes(v).decode("latin-1") if isinstance(v, bytes | memoryview) else str(v)
                      for v in row.values()]
            out.append((dict(row), "\x1f".join(values)))
    return out


def test_rows_about_a_patient_hold_no_patient_nor_correspondent_in_clear(world: World) -> None:
    rows = _cells(world.store)
    about = [(r, cells) for r, cells in rows if r["patient_index"] is not None]
    assert {r["action"] for r, _ in about} >= {"mail.deliver", "mail.sent", "mail.queue", "patient.mdn_sent"}
    for _, cells in rows:
        assert f"patient:{world.patient_id}" not in cells
        assert world.ins not in cells and world.ins[:13] not in cells
        assert PERSONAL not in cells
    for r, cells in about:
        assert r["hash_form"] == audit_links.FORM and r["subject_ref"] in ("patient", "domain")
        assert r["peer"] is None and r["details"] == "{}"
        if r["actor"] != f"pro:{PRO}":  # the professional's own actions keep their actor in clear
            assert "clinic.test" not in cells and "198.51.100.7" not in cells
    # The patient's reply: neither the patient nor the correspondent's domain in clear.
    queued = next(r for r, _ in about if r["action"] == "mail.queue")
    assert queued["actor"] == "patient" and queued["subject_ref"] == "domain"
    # Same patient, same index; the index is not the patient id's plain hash.
    assert len({bytes(r["patient_index"]) for r, _ in about}) == 1


def test_the_raw_database_holds_no_link_either(world: World) -> None:
    """Byte scan of what lies on disk: SQLite's file and WAL (free pages included), PostgreSQL's
    ``pg_dump`` output: the links were never written in clear."""
    url = world.store.db.url
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())
    else:
        pg_dump = shutil.which("pg_dump")
        assert pg_dump, "pg_dump (postgresql-client) is needed"
        target = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        raw = subprocess.run([pg_dump, "--no-owner", target], capture_output=True, timeout=120, check=True).stdout
        assert b"COPY public.audit_log" in raw
    for needle in (f"patient:{world.patient_id}", world.ins, world.ins[:13], "198.51.100.7", PERSONAL):
        assert needle.encode() not in raw, needle


def test_history_admin_page_and_search_by_ins_open_them(world: World) -> None:
    store, pid = world.store, world.patient_id
    with store.db.read() as s:
        shown, _ = history.entries(s, store.keys, pid)
        admin = people.history(s, store.keys, pid)
        found = audit_trail.search(s, store.keys, AuditQuery(subject=world.ins))
        by_ref = audit_trail.search(s, store.keys, AuditQuery(subject=f"patient:{pid}", action="mail.deliver"))
        by_actor = audit_trail.search(s, store.keys, AuditQuery(actor=f"pro:{PRO}"))
        by_patient = audit_trail.search(s, store.keys, AuditQuery(actor=f"patient:{pid}"))
    assert [e.who for e in shown if e.what == "Message reçu"] == [f"Professionnel {PRO}"] * 2
    assert any(e.what == "Message envoyé" and e.who == "Vous" for e in shown)
    assert any(e.what.startswith("Accusé de lecture") for e in shown)
    assert [e["actor"] for e in admin if e["action"] == "mail.deliver"] == [f"pro:{PRO}"] * 2
    actions = sorted(r["action"] for r in found)
    assert actions == ["mail.deliver", "mail.deliver", "mail.queue", "mail.sent", "patient.mdn_sent"]
    queued = next(r for r in found if r["action"] == "mail.queue")
    assert queued["actor"] == f"patient:{pid}" and queued["subject"] == "domain:clinic.test"
    assert queued["peer"] == "198.51.100.7" and queued["sealed"] and not queued["shredded"]
    assert [r["subject"] for r in by_ref] == [f"patient:{pid}"] * 2
    assert {r["subject"] for r in by_actor} == {f"patient:{pid}"}  # the actor's entries, opened
    assert sorted(r["action"] for r in by_patient) == ["mail.queue", "mail.sent"]  # what the patient did
    with store.db.read() as s:  # another patient's INS finds none of them
        other = synthetic_ins(random.Random(99))
        assert audit_trail.search(s, store.keys, AuditQuery(subject=other)) == []


def test_verify_before_and_after_purge_and_views_say_shredded(world: World) -> None:
    store, pid = world.store, world.patient_id
    with store.db.read() as s:
        assert audit.verify(s).ok
    with store.db.write() as s:
        patient = by_id(s, Patient, pid)
        assert patient is not None
        purge_patient(s, store.keys, patient, NOW + timedelta(days=1))
        audit.record(s, actor="admin:cli", action="patient.purge", subject_ref=f"patient:{pid}",
                     details={"via": "cli"}, keys=store.keys)
    store.keys.forget()
    with store.db.read() as s:
        report = audit.verify(s)
        found = audit_trail.search(s, store.keys, AuditQuery(subject=world.ins))
        shown, _ = history.entries(s, store.keys, pid)
        admin = people.history(s, store.keys, pid)
    assert report.ok, report
    # The admin's page lists the entries whose subject was the patient, marked shredded.
    assert sorted(e["action"] for e in admin) == ["mail.deliver", "mail.deliver", "mail.sent", "patient.mdn_sent",
                                                  "patient.purge"]
    assert all(e["shredded"] and e["peer"] is None for e in admin)
    assert len(found) == 6 and all(r["shredded"] for r in found)
    assert {r["subject"] for r in found} == {f"patient:{audit_links.SHREDDED}", f"domain:{audit_links.SHREDDED}"}
    assert f"pro:{PRO}" in {r["actor"] for r in found}  # who acted stays known
    assert shown == []
    for _, cells in _cells(store):
        assert f"patient:{pid}" not in cells and world.ins not in cells


@pytest.mark.parametrize("column", ["patient_sealed", "patient_data_key_id", "subject_ref", "actor"])
def test_tampering_with_a_sealed_entry_breaks_the_chain(world: World, column: str) -> None:
    store = world.store
    with store.db.write() as s:
        row = s.execute(select(AuditEntry).where(AuditEntry.action == "mail.deliver")
                        .order_by(AuditEntry.id)).scalars().first()
        assert row is not None and row.patient_sealed is not None
        bad_id = row.id
        changed: dict[str, Any] = {
            "patient_sealed": bytes([row.patient_sealed[0] ^ 1]) + row.patient_sealed[1:],
            "patient_data_key_id": (row.patient_data_key_id or 0) + 1,
            "subject_ref": "pro", "actor": "pro:someone@else.test"}
        s.execute(update(AuditEntry).where(AuditEntry.id == bad_id).values({column: changed[column]}))
    with store.db.read() as s:
        report = audit.verify(s)
    assert not report.ok and report.first_bad_id == bad_id


def test_a_moved_index_does_not_put_an_entry_in_another_patients_history(world: World) -> None:
    store = world.store
    other, _, other_ins = _patient(store, 8)
    with store.db.read() as s:
        index, version = store.keys.index_version(s)
    with store.db.write() as s:
        s.execute(update(AuditEntry).where(AuditEntry.action == "mail.deliver")
                  .values(patient_index=audit_links.index_of(index, other, version)))
    with store.db.read() as s:
        shown, _ = history.entries(s, store.keys, other)
        found = audit_trail.search(s, store.keys, AuditQuery(subject=other_ins))
        assert audit.verify(s).ok  # the index is a lookup aid, outside the hash: checked on opening
    assert [e.what for e in shown] == []
    assert all(r["action"] != "mail.deliver" for r in found)


def test_entries_written_before_keep_verifying_and_are_found(store: Store) -> None:
    """A clear entry of the previous release (form 1) stays as it was, hash and all, among sealed ones."""
    pid, _, ins = _patient(store, 11, email=None)
    with store.db.write() as s:
        audit.record(s, actor="admin:cli", action="test.first")
        prev = s.execute(select(AuditEntry.hash).where(AuditEntry.partition == 0)
                         .order_by(AuditEntry.id.desc()).limit(1)).scalar_one()
        digest = audit.entry_hash(prev, NOW, "admin:cli", "patient.close", f"patient:{pid}", None, "{}")
        s.execute(text("INSERT INTO audit_log (partition, at, actor, action, subject_ref, peer, details, prev_hash,"
                       " hash)"
                       " VALUES (0, :at, 'admin:cli', 'patient.close', :sub, NULL, '{}', :prev, :hash)"),
                  {"at": NOW, "sub": f"patient:{pid}", "prev": prev, "hash": digest})
    with store.db.write() as s:
        audit.record(s, actor="admin:cli", action="admin.patient.lookup", subject_ref=f"patient:{pid}",
                     keys=store.keys)
    with store.db.read() as s:
        assert audit.verify(s).ok
        found = audit_trail.search(s, store.keys, AuditQuery(subject=ins))
    assert [(r["action"], r["subject"], r["sealed"]) for r in found] == [
        ("admin.patient.lookup", f"patient:{pid}", True), ("patient.close", f"patient:{pid}", False)]


def test_an_entry_about_a_patient_needs_the_keys(store: Store) -> None:
    with store.db.write() as s, pytest.raises(ValueError, match="keys"):
        audit.record(s, actor="admin:cli", action="patient.close", subject_ref="patient:3")


def test_an_index_key_rotation_moves_the_entries_and_the_trail_still_verifies(world: World) -> None:
    from crypto.blind_index import IndexKeyring
    from gateway.store import audit_conversion
    from gateway.store.keys import KeyService

    store, pid = world.store, world.patient_id
    old = store.ring.index
    assert isinstance(old, IndexKeyring)
    new = old.with_new_version()
    with store.db.read() as s:
        before, _ = audit_links.entries_about(s, store.keys, pid, limit=100)
    total, after = 0, 0
    while True:
        moved, last = audit_conversion.reindex_batch(store.db, new, source=1, target=2, after_patient=after, limit=1)
        if last is None:
            break
        total, after = total + moved, last
    assert total == len(before) == 5
    only_new = KeyService(store.ring.with_index(IndexKeyring({2: new.key_bytes(2)})))
    with store.db.read() as s:
        found, _ = audit_links.entries_about(s, only_new, pid, limit=100)
        assert [e.id for e, _ in found] == [e.id for e, _ in before]
        assert audit.verify(s).ok


def test_a_patients_history_names_its_partitions_unless_an_index_key_was_retired(world: World) -> None:
    """Issue 23: the entries about a patient lie in the partitions of the patient's keyed index
    (one per index key version held) and the system partition (older entries); the history
    names them (a few shards, not all). Once a version is retired, entries written under it lie
    where no key left can say: the history then looks on every partition, and still finds them."""
    from sqlalchemy import event

    from crypto.blind_index import IndexKeyring
    from gateway.store import audit_conversion
    from gateway.store.keys import KeyService

    store, pid = world.store, world.patient_id
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM audit_log" in statement:
            seen.append(" ".join(statement.split()))

    old = store.ring.index
    assert isinstance(old, IndexKeyring)
    with store.db.read() as s:
        stored = {int(p) for p in s.execute(select(AuditEntry.partition).where(
            AuditEntry.patient_index == audit_links.index_of(old, pid, 1))).scalars()}
    assert stored and set(audit_links.partitions_about(old, pid) or ()) >= stored
    event.listen(store.db.engine, "before_cursor_execute", record)
    try:
        with store.db.read() as s:
            before, _ = audit_links.entries_about(s, store.keys, pid, mailbox_id=world.mailbox_id, limit=100)
        assert len(before) == 5 and seen and all("audit_log.partition IN" in q for q in seen), seen
        new = old.with_new_version()
        after: int | None = 0
        while after is not None:
            _, after = audit_conversion.reindex_batch(store.db, new, source=1, target=2, after_patient=after)
        assert audit_links.partitions_about(new, pid) is not None  # both versions held: still named
        only_new = KeyService(store.ring.with_index(IndexKeyring({2: new.key_bytes(2)})))
        assert audit_links.partitions_about(IndexKeyring({2: new.key_bytes(2)}), pid) is None
        seen.clear()
        with store.db.read() as s:
            found, _ = audit_links.entries_about(s, only_new, pid, limit=100)
        assert [e.id for e, _ in found] == [e.id for e, _ in before]
        assert seen and not any("audit_log.partition" in q.split(" WHERE ", 1)[1] for q in seen), seen
    finally:
        event.remove(store.db.engine, "before_cursor_execute", record)


def test_an_entry_after_a_purge_in_the_same_transaction_is_not_sealed_under_the_shredded_key(world: World) -> None:
    """Entries about a patient remember the patient's key for their transaction (issue 22); a
    purge in that transaction shreds the key, and the entries after it must not use it."""
    store, pid = world.store, world.patient_id
    with store.db.write() as s:
        before = audit.record(s, actor="admin:cli", action="patient.note", subject_ref=f"patient:{pid}",
                              details={"n": 1}, keys=store.keys)
        patient = by_id(s, Patient, pid)
        assert patient is not None
        purge_patient(s, store.keys, patient, NOW + timedelta(days=1))
        after = audit.record(s, actor="admin:cli", action="patient.purge", subject_ref=f"patient:{pid}",
                             details={"via": "cli"}, keys=store.keys)
    with store.db.read() as s:
        rows = {r.hash: r for r in s.execute(select(AuditEntry).where(AuditEntry.hash.in_([before, after]))).scalars()}
        assert audit.verify(s).ok
    assert rows[after].patient_sealed is None and rows[after].patient_data_key_id is None
    assert rows[before].patient_data_key_id is not None  # sealed while the key existed (then shredded)
