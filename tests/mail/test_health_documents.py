"""Health documents in the delivery pipeline (issue 21), both stores (GATEWAY_TEST_STORE).

A patient's mailbox takes an IHE XDM archive only when every INS in it is the recipient's
and none of its documents is ``INVISIBLE_PATIENT``; a refused recipient gets no copy, an
audit entry and a count, and the sender a DSN when others took the message (all refused:
:class:`DocumentsRefused`, the 550 after DATA). Damaged and hostile archives are delivered
as ordinary attachments, marked. Professionals' mailboxes are unchanged."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from gateway import metrics
from gateway.accounts.patients import provision
from gateway.accounts.pros import add_hosted_domain, add_pro
from gateway.delivery.directory import LocalTarget
from gateway.delivery.documents import DocumentPolicy, DocumentsRefused
from gateway.delivery.pipeline import Inbound, Pipeline, Rcpt
from gateway.mailstore import inbox, parsing, summaries, xdm
from gateway.mailstore.messages import read_message
from gateway.outbound.queue import MSG_PURPOSE, open_envelope
from gateway.store.changes import ChangeHub
from gateway.store.models import AuditEntry, Message, QueueEntry
from gateway.testing.store import Store
from healthdocs import cda, errors
from healthdocs import testing as kit
from healthdocs import xdm as xdm_format
from imap.message import mime
from routing.address import Address, parse_address
from routing.ins import synthetic_ins
from tests.mail.test_group_commit import NOW

PATIENT_DOMAIN = "patients.test"


def _patient(store: Store, ins: str) -> Rcpt:
    with store.db.write() as s:
        done = provision(s, store.keys, ins, email=None, now=NOW, opposition_window=timedelta(days=7),
                         code_validity=timedelta(days=30), open_now=True)
        target = LocalTarget(done.patient.mailbox_id, "patient", done.patient.id)
    return Rcpt(Address(ins, PATIENT_DOMAIN), target)


def _pro(store: Store, address: str) -> Rcpt:
    with store.db.write() as s:
        domain = add_hosted_domain(s, address.split("@")[1])
        pro = add_pro(s, store.keys, address, domain, password="not-used-here-1234")
        target = LocalTarget(pro.mailbox_id, "pro", pro.id)
    return Rcpt(parse_address(address), target)


def _inbound(*rcpts: Rcpt) -> Inbound:
    return Inbound(mail_from=parse_address("dr@clinic.test"), recipients=rcpts, actor="trusted:clinic.test",
                   protocol="ESMTPS", sender_is_professional=True, peer="192.0.2.7")


def _pipeline(store: Store, policy: DocumentPolicy | None = None) -> Pipeline:
    return Pipeline(store.db, store.keys, ChangeHub(), hostname="mx.gateway.test", notification_interval=None,
                    documents=policy)


def _summaries(store: Store, rcpt: Rcpt) -> list[summaries.Summary]:
    assert isinstance(rcpt.target, LocalTarget)
    mailbox_id = rcpt.target.mailbox_id
    with store.db.read() as s:
        listed, _ = inbox.summarised(s, store.keys, mailbox_id, inbox.rows(s, mailbox_id, ["INBOX"]))
    return [x.summary for x in listed]


def _count(store: Store, model: type, **where: object) -> int:
    with store.db.read() as s:
        query = select(func.count()).select_from(model)
        for column, value in where.items():
            query = query.where(getattr(model, column) == value)
        return int(s.execute(query).scalar_one())


def _metric(reason: str) -> float:
    return float(metrics.HEALTH_DOCUMENTS.labels(reason)._value.get())


@pytest.fixture
def rng() -> random.Random:
    return random.Random(2121)


def test_matching_archive_delivered_and_listed_in_the_summary(store: Store, rng: random.Random) -> None:
    ins = synthetic_ins(rng)
    patient = _patient(store, ins)
    raw = kit.message(kit.several(ins), sender="dr@clinic.test", to=str(patient.address),
                      codecda=["11490-0,11502-2,57833-6"])
    _pipeline(store).deliver_sync(_inbound(patient), raw)
    [summary] = _summaries(store, patient)
    assert summary.health is not None and summary.health.notes == ()
    [archive] = summary.health.archives
    assert (archive.part, archive.filename, archive.status) == ("2", "IHE_XDM.ZIP", "read")
    assert [(d.title, d.level) for d in archive.documents] == [
        ("Compte rendu d'hospitalisation", 1), ("Résultats de biologie", 3), ("Ordonnance", 1)]
    assert all(d.author == "Alex EXEMPLE" and d.created == "20260115093000" for d in archive.documents)
    with store.db.read() as s:  # what the inbox does to show one: the part, the entry, the PDF
        [row] = s.execute(select(Message)).scalars().all()
        assert isinstance(patient.target, LocalTarget)
        stored = read_message(s, store.keys, patient.target.mailbox_id, row.id)
    data = xdm.part_bytes(parsing.parse(stored), archive.part)
    assert data is not None
    pdf = cda.pdf(xdm_format.read_entry(data, archive.documents[0].entry))
    assert pdf is not None and pdf.startswith(b"%PDF-")
    sections = cda.sections(xdm_format.read_entry(data, archive.documents[1].entry))
    assert [title for title, _ in sections] == ["Hématologie", "Biochimie"]


@pytest.mark.parametrize(("make", "reason"), [
    (lambda ins, other: kit.other_patient(ins, other), "data.document_other_patient"),
    (lambda ins, other: kit.other_patient(ins, other, where="cda"), "data.document_other_patient"),
    (lambda ins, other: kit.invisible(ins), "data.document_invisible_patient"),
])
def test_refused_patient_gets_nothing_and_it_is_audited_and_counted(store: Store, rng: random.Random,
                                                                    make: object, reason: str) -> None:
    ins, other = synthetic_ins(rng), synthetic_ins(rng)
    patient = _patient(store, ins)
    raw = kit.message(make(ins, other), sender="dr@clinic.test", to=str(patient.address))  # type: ignore[operator]
    before = _metric(reason)
    with pytest.raises(DocumentsRefused) as refused:
        _pipeline(store).deliver_sync(_inbound(patient), raw)
    v = refused.value.verdict
    assert (v.reason, v.code, v.enhanced, refused.value.permanent) == (reason, 550, "5.7.1", True)
    assert _count(store, Message) == 0 and _count(store, QueueEntry) == 0
    assert _count(store, AuditEntry, action="mail.refuse_document") == 1
    assert _count(store, AuditEntry, action="mail.deliver") == 0
    assert _metric(reason) == before + 1


def test_refused_patient_among_others_gets_no_copy_and_the_sender_a_dsn(store: Store, rng: random.Random) -> None:
    ins, other = synthetic_ins(rng), synthetic_ins(rng)
    wrong, right = _patient(store, ins), _patient(store, other)
    pro = _pro(store, "dr.colleague@hosted.test")
    raw = kit.message(kit.level1(other), sender="dr@clinic.test", to=str(wrong.address))
    done = _pipeline(store).deliver_sync(_inbound(wrong, right, pro), raw)
    assert done.local == 2  # the right patient and the professional
    assert _summaries(store, wrong) == [] and len(_summaries(store, right)) == 1 and len(_summaries(store, pro)) == 1
    assert _count(store, AuditEntry, action="mail.refuse_document") == 1
    with store.db.read() as s:
        [dsn] = s.execute(select(QueueEntry).where(QueueEntry.kind == "dsn")).scalars().all()
        assert dsn.domain == "clinic.test"
        assert dsn.data_key_id is not None
        envelope = open_envelope(s, store.keys, dsn)
        text = store.keys.system_by_id(s, dsn.data_key_id).open(MSG_PURPOSE, dsn.uuid, dsn.message_sealed).decode()
    assert envelope.mail_from is None and [r.address for r in envelope.recipients] == ["dr@clinic.test"]
    assert "Action: failed" in text and "5.7.1" in text and f"{ins}@{PATIENT_DOMAIN}" in text
    assert "another patient" in text


def test_professional_mailboxes_are_unchanged(store: Store, rng: random.Random) -> None:
    pro = _pro(store, "dr.other@hosted.test")
    raw = kit.message(kit.invisible(synthetic_ins(rng)), sender="dr@clinic.test", to=str(pro.address))
    _pipeline(store).deliver_sync(_inbound(pro), raw)
    with store.db.read() as s:
        [row] = s.execute(select(Message)).scalars().all()
        assert isinstance(pro.target, LocalTarget)
        assert read_message(s, store.keys, pro.target.mailbox_id, row.id).endswith(raw)


@pytest.mark.parametrize(("make", "reason"), [
    (lambda ins: kit.zip_bomb(ins, size=32 * 1024 * 1024), errors.ENTRY_TOO_LARGE),
    (kit.traversal, errors.PATH),
    (kit.xxe, errors.XML_FORBIDDEN),
    (lambda ins: b"PK\x03\x04 not a zip after all", errors.CORRUPT),
])
def test_damaged_or_hostile_archive_delivered_as_an_attachment_and_marked(store: Store, rng: random.Random,
                                                                          make: object, reason: str) -> None:
    ins = synthetic_ins(rng)
    patient = _patient(store, ins)
    raw = kit.message(make(ins), sender="dr@clinic.test", to=str(patient.address))  # type: ignore[operator]
    _pipeline(store).deliver_sync(_inbound(patient), raw)
    [summary] = _summaries(store, patient)
    assert summary.health is not None
    [archive] = summary.health.archives
    assert (archive.status, archive.reason) == ("damaged", reason)
    assert "health.damaged" in summary.health.notes
    assert summary.shown.attachments == ("IHE_XDM.ZIP",)  # the original stays downloadable, unchanged
    with store.db.read() as s:
        [row] = s.execute(select(Message)).scalars().all()
        assert isinstance(patient.target, LocalTarget)
        assert read_message(s, store.keys, patient.target.mailbox_id, row.id).endswith(raw)


def test_headers_that_disagree_are_noted_and_counted_not_refused(store: Store, rng: random.Random) -> None:
    ins = synthetic_ins(rng)
    patient = _patient(store, ins)
    raw = kit.message(kit.level1(ins), sender="dr@clinic.test", to=str(patient.address), codecda=["34133-9"],
                      x_mss_ins="N")
    before = _metric("health.codecda_mismatch")
    _pipeline(store).deliver_sync(_inbound(patient), raw)
    [summary] = _summaries(store, patient)
    assert summary.health is not None
    assert summary.health.notes == ("health.codecda_mismatch", "health.ins_header_mismatch")
    assert _metric("health.codecda_mismatch") == before + 1


def test_check_off_delivers_and_examines_nothing(store: Store, rng: random.Random) -> None:
    ins, other = synthetic_ins(rng), synthetic_ins(rng)
    patient = _patient(store, ins)
    raw = kit.message(kit.other_patient(ins, other), sender="dr@clinic.test", to=str(patient.address))
    _pipeline(store, DocumentPolicy(check=False)).deliver_sync(_inbound(patient), raw)
    [summary] = _summaries(store, patient)
    assert summary.health is None


def test_a_zip_with_the_xdm_layout_under_any_name_is_examined_other_parts_are_not(store: Store, rng: random.Random,
                                                                                  monkeypatch: pytest.MonkeyPatch
                                                                                  ) -> None:
    ins, other = synthetic_ins(rng), synthetic_ins(rng)
    patient = _patient(store, ins)
    raw = kit.message(kit.other_patient(ins, other), sender="dr@clinic.test", to=str(patient.address),
                      filename="documents.zip")
    with pytest.raises(DocumentsRefused):
        _pipeline(store).deliver_sync(_inbound(patient), raw)
    decoded: list[int] = []
    real = xdm.decoded_body

    def counted(part: mime.Part) -> bytes:
        decoded.append(1)
        return real(part)
    monkeypatch.setattr(xdm, "decoded_body", counted)
    pdf = kit.message(kit.pdf(padding=50_000), sender="dr@clinic.test", to=str(patient.address), filename="r.pdf")
    _pipeline(store).deliver_sync(_inbound(patient), pdf)
    [summary] = _summaries(store, patient)
    assert summary.health is not None and summary.health.archives == () and decoded == []


def test_nothing_about_the_patient_or_the_documents_reaches_the_logs(store: Store, rng: random.Random,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Accepted, refused and unreadable archives: the log lines carry reason codes and ids only,
    never an INS (whole or without its key), a document's title, its author or the sender's words."""
    caplog.set_level("DEBUG")
    ins, other = synthetic_ins(rng), synthetic_ins(rng)
    patient = _patient(store, ins)
    for archive in (kit.several(ins), kit.other_patient(ins, other), kit.invisible(ins), b"PK\x03\x04 not a zip"):
        raw = kit.message(archive, sender="dr@clinic.test", to=str(patient.address), codecda=["11490-0"])
        try:
            _pipeline(store).deliver_sync(_inbound(patient), raw)
        except DocumentsRefused:
            pass
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records  # the refusals were logged
    for secret in (ins, ins[:13], other, other[:13], "Compte rendu", "Alex EXEMPLE", "Hématologie"):
        assert secret not in logged, secret
