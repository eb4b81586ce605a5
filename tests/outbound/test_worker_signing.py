"""Everything the worker sends is DKIM-signed by its From: domain (issue 17 item 3).

Through the worker to a TLS peer on 127.0.0.1: a read receipt and a patient's reply (the
patient domain's key, made on first use), a DSN and a notification (the host name's key), a
professional's message (the hosted domain's key). Each verifies with dkimpy against the key
the gateway publishes (``gateway domain hosted dkim``: :func:`published`).
"""

from __future__ import annotations

import asyncio
import email
import ssl
from datetime import UTC, datetime, timedelta

import pytest

from crypto.dkim import pinned_dnsfunc, verify_message
from crypto.dkim_keys import dns_txt_record
from gateway.accounts.pros import add_trusted_domain
from gateway.accounts.signing_keys import published
from gateway.outbound import queue
from gateway.outbound.dsn import DsnRecipient, build_dsn
from gateway.outbound.mdn import build_mdn
from gateway.outbound.notify import build_notification
from gateway.outbound.process import Context
from gateway.outbound.queue import QueuedRecipient
from gateway.outbound.worker import OutboundWorker
from gateway.settings import QueueSettings
from gateway.testing.store import Store
from tests.outbound.peer import PeerController, PeerHandler, add_signing_domain

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOST, PATIENTS = "mail.gateway.test", "patients.gateway.test"
PATIENT = f"253072A07300443@{PATIENTS}"
ORIGINAL = {"From": "dr@remote.test", "To": PATIENT, "Message-ID": "<o1@remote.test>",
            "Disposition-Notification-To": "dr@remote.test", "Date": "Mon, 02 Mar 2026 08:00:00 +0100"}


@pytest.fixture
def worker(store: Store, peer: PeerController, client_ctx: ssl.SSLContext) -> OutboundWorker:
    route = f"127.0.0.1:{peer.port}"
    with store.db.write() as s:
        add_trusted_domain(s, "remote.test", route=route, dkim_policy="dns")
        add_signing_domain(s, store.keys, "clinic.test", "s1")
    settings = QueueSettings(notification_relay=route, worker_interval_seconds=0.05, connect_timeout_seconds=5,
                             command_timeout_seconds=10, lease_seconds=60)
    ctx = Context(db=store.db, keys=store.keys, settings=settings, hostname=HOST, patient_domain=PATIENTS,
                  tls=client_ctx, submit=_no_local, clock=lambda: NOW)
    return OutboundWorker(ctx, owner="signing-test")


async def _no_local(mail_from: str | None, recipients: object, message: bytes) -> None:
    raise AssertionError("nothing here is delivered locally")


def _enqueue(store: Store, kind: str, mail_from: str | None, rcpt: str, message: bytes) -> None:
    with store.db.write() as s:
        queue.enqueue(s, store.keys, domain=rcpt.rpartition("@")[2], mail_from=mail_from,
                      recipients=[QueuedRecipient(rcpt, ("NEVER",) if mail_from is None else ())], message=message,
                      kind=kind, now=NOW, max_age=timedelta(hours=1))


def _message_id(message: bytes) -> str:
    return str(email.message_from_bytes(message)["Message-ID"])


def _verify(store: Store, content: bytes, domain: str) -> None:
    with store.db.read() as s:
        [key] = [k for k in published(s) if k.domain == domain]
    result = verify_message(content, dnsfunc=pinned_dnsfunc(key.selector, domain, dns_txt_record(key.public_key)))
    assert result.ok and result.domain == domain, result.reason


async def test_every_kind_leaves_signed(store: Store, worker: OutboundWorker, handler: PeerHandler) -> None:
    mdn = build_mdn(ORIGINAL, reporting_ua=f"{HOST}; messagerie-sante", final_recipient=PATIENT, now=NOW)
    dsn = build_dsn(reporting_mta=HOST, to="dr@remote.test", original=b"From: dr@remote.test\r\n\r\nx\r\n", now=NOW,
                    recipients=[DsnRecipient(PATIENT, "delivered", "2.0.0")])
    reply = (f"From: {PATIENT}\r\nTo: dr@remote.test\r\nSubject: Re: Compte rendu\r\n"
             f"Message-ID: <r1@{HOST}>\r\nIn-Reply-To: <o1@remote.test>\r\n\r\nMerci.\r\n").encode()
    pro = b"From: dr@clinic.test\r\nTo: x@remote.test\r\nSubject: Avis\r\nMessage-ID: <p1@clinic.test>\r\n\r\nAvis.\r\n"
    notification = build_notification(to="patient.perso@perso.example", hostname=HOST, now=NOW)
    _enqueue(store, "mdn", None, "dr@remote.test", mdn)
    _enqueue(store, "dsn", None, "dr@remote.test", dsn)
    _enqueue(store, "message", PATIENT, "dr@remote.test", reply)
    _enqueue(store, "message", "dr@clinic.test", "x@remote.test", pro)
    _enqueue(store, "notification", None, "patient.perso@perso.example", notification)
    assert sorted(await asyncio.wait_for(worker.drain(), 60)) == ["delivered"] * 5
    got = {_message_id(r.content): r.content for r in handler.received}
    assert len(got) == 5 and all(c.startswith(b"DKIM-Signature:") for c in got.values())
    for original, domain in ((mdn, PATIENTS), (dsn, HOST), (reply, PATIENTS), (pro, "clinic.test"),
                             (notification, HOST)):
        content = got[_message_id(original)]
        assert content.endswith(original)
        _verify(store, content, domain)
    with store.db.read() as s:
        assert {(k.domain, k.source) for k in published(s)} == {
            ("clinic.test", "hosted"), (PATIENTS, "gateway"), (HOST, "gateway")}
