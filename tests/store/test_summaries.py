"""The summary made at delivery from the message's one parse (issue 16), on SQLite and PostgreSQL:
stored sealed with the message, equal to the summary of the stored bytes, and computed (then
kept) for rows stored without one or with an older version."""

from __future__ import annotations

import json
import random

import pytest
from sqlalchemy import select, update

from gateway.delivery.pipeline import Pipeline
from gateway.mailstore import inbox, parsing, summaries
from gateway.mailstore.messages import append_message, read_message, sealed_row
from gateway.mailstore.sealed import open_summary, seal_summary
from gateway.store.changes import ChangeHub
from gateway.store.models import Message
from gateway.testing.store import Store
from healthdocs import testing as xdm_kit
from routing.ins import synthetic_ins
from tests.mail.test_group_commit import NOW, patient_inbound

XDM = xdm_kit.message(xdm_kit.several(synthetic_ins(random.Random(42))), sender="dr@clinic.test", to="p@x.test",
                      codecda=["11490-0"])

MULTIPART = (
    b"From: =?utf-8?q?Dupont=2C_J=C3=A9r=C3=B4me?= <dr@clinic.test>\r\nTo: p@x.test\r\n"
    b"Subject: R\xc3\xa9sultats =?utf-8?q?d=C3=A9taill=C3=A9s?=\r\nDate: Mon, 23 Nov 2026 09:00:00 +0100\r\n"
    b"Disposition-Notification-To: dr@clinic.test\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n'
    b'--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="r.pdf"\r\n\r\n%PDF\r\n'
    b'--b\r\nContent-Type: image/png; name="scan.png"\r\nContent-Disposition: inline\r\n\r\nPNG\r\n--b--\r\n'
)


def _deliver(store: Store, raw: bytes) -> tuple[int, int]:
    inbound = patient_inbound(store)
    pipeline = Pipeline(store.db, store.keys, ChangeHub(), hostname="mx.gateway.test", notification_interval=None)
    pipeline.deliver_sync(inbound, raw, now=NOW)
    with store.db.read() as s:
        message_id = s.execute(select(Message.id).order_by(Message.id.desc())).scalars().first()
    assert message_id is not None
    return inbound.recipients[0].target.mailbox_id, message_id  # type: ignore[union-attr]


@pytest.mark.parametrize("raw", [
    MULTIPART,
    b"Subject: no id\r\n\r\nbody\r\n",  # the pipeline adds a Message-ID in front
    b"\r\nno header at all\r\n",
    b" folded first line\r\nSubject: odd\r\n\r\nbody\r\n",  # would fold into the added Received:
    XDM,  # health documents: read once at delivery, the same as computed from the stored bytes
])
def test_the_summary_stored_at_delivery_is_the_summary_of_the_stored_bytes(store: Store, raw: bytes) -> None:
    mailbox_id, message_id = _deliver(store, raw)
    with store.db.read() as s:
        row = sealed_row(s, mailbox_id, message_id)
        assert row is not None and row.summary is not None  # sealed with the message, not left for later
        encoded = open_summary(s, store.keys, mailbox_id, row)
        stored_bytes = read_message(s, store.keys, mailbox_id, message_id)
    assert encoded is not None and b"dr@clinic.test" not in row.summary  # sealed, not clear
    assert summaries.decode(encoded) == summaries.compute(stored_bytes)


def test_what_the_web_list_reads_from_the_summary(store: Store) -> None:
    mailbox_id, _ = _deliver(store, MULTIPART)
    with store.db.read() as s:
        [listed], to_store = inbox.summarised(s, store.keys, mailbox_id, inbox.rows(s, mailbox_id, ["INBOX"]))
    assert to_store == {}
    shown = listed.summary.shown
    assert shown.subject == "Résultats détaillés"
    assert (shown.from_name, shown.from_address) == ("Dupont, Jérôme", "dr@clinic.test")
    assert shown.date == "2026-11-23T09:00:00+01:00" and shown.message_id and shown.message_id.startswith("<")
    assert shown.attachments == ("r.pdf",) and shown.documents == 2 and shown.wants_receipt
    assert listed.summary.imap.envelope.message_id == shown.message_id


def test_rows_without_a_summary_or_with_an_older_one_get_one_computed_and_kept(store: Store) -> None:
    mailbox_id, delivered = _deliver(store, MULTIPART)
    with store.db.write() as s:
        bare = append_message(s, store.keys, mailbox_id, "INBOX", b"Subject: bare\r\n\r\nx\r\n").message_id
        older = append_message(s, store.keys, mailbox_id, "INBOX", b"Subject: v1\r\n\r\nx\r\n",
                               summary=json.dumps({"v": 1, "envelope": {}, "body": {}}).encode()).message_id
    with store.db.read() as s:
        listed, to_store = inbox.summarised(s, store.keys, mailbox_id, inbox.rows(s, mailbox_id, ["INBOX"]))
    assert set(to_store) == {bare, older}
    subjects = {x.row.id: x.summary.shown.subject for x in listed}
    assert subjects[bare] == "bare" and subjects[older] == "v1" and subjects[delivered] == "Résultats détaillés"
    with store.db.write() as s:
        inbox.keep(s, mailbox_id, to_store)
    with store.db.read() as s:
        _, again = inbox.summarised(s, store.keys, mailbox_id, inbox.rows(s, mailbox_id, ["INBOX"]))
    assert again == {}


def test_a_stored_summary_is_read_not_recomputed(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    mailbox_id, message_id = _deliver(store, MULTIPART)
    monkeypatch.setattr(parsing, "parse", lambda raw: pytest.fail("parsed again"))
    with store.db.write() as s:  # a marker in the stored summary proves it is what the list shows
        row = sealed_row(s, mailbox_id, message_id)
        assert row is not None
        encoded = open_summary(s, store.keys, mailbox_id, row)
        assert encoded is not None
        doc = json.loads(encoded)
        doc["shown"]["subject"] = "from the stored summary"
        blob = seal_summary(s, store.keys, mailbox_id, row, json.dumps(doc).encode())
        s.execute(update(Message).where(Message.id == message_id).values(summary_sealed=blob))
    with store.db.read() as s:
        [listed], _ = inbox.summarised(s, store.keys, mailbox_id, inbox.rows(s, mailbox_id, ["INBOX"]))
    assert listed.summary.shown.subject == "from the stored summary"


def test_the_documents_found_are_in_the_summary_and_a_version_3_summary_reads_as_not_examined(store: Store) -> None:
    mailbox_id, message_id = _deliver(store, XDM)
    with store.db.read() as s:
        [listed], _ = inbox.summarised(s, store.keys, mailbox_id, inbox.rows(s, mailbox_id, ["INBOX"]))
    health = listed.summary.health
    assert health is not None and [a.part for a in health.archives] == ["2"]
    assert [d.title for d in health.documents] == ["Compte rendu d'hospitalisation", "Résultats de biologie",
                                                  "Ordonnance"]
    assert health.notes == ("health.codecda_mismatch",)  # one code declared, three documents
    with store.db.write() as s:  # the same summary as version 3 wrote it: no "health" key
        row = sealed_row(s, mailbox_id, message_id)
        assert row is not None
        encoded = open_summary(s, store.keys, mailbox_id, row)
        assert encoded is not None
        doc = json.loads(encoded)
        doc["v"] = 3
        del doc["health"]
        blob = seal_summary(s, store.keys, mailbox_id, row, json.dumps(doc).encode())
        s.execute(update(Message).where(Message.id == message_id).values(summary_sealed=blob))
    with store.db.read() as s:
        [listed], to_store = inbox.summarised(s, store.keys, mailbox_id, inbox.rows(s, mailbox_id, ["INBOX"]))
    assert to_store == {} and listed.summary.health is None
    assert listed.summary.shown.attachments == ("IHE_XDM.ZIP",)
