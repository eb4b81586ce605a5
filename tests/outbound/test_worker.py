"""The worker end to end: queue -> TLS peer on 127.0.0.1 -> results, DSNs through InternalSubmit."""

from __future__ import annotations

import asyncio
import email
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message

import pytest
from sqlalchemy import select

from crypto.dkim import pinned_dnsfunc, verify_message
from gateway.accounts.pros import add_trusted_domain
from gateway.outbound import queue
from gateway.outbound.process import Context
from gateway.outbound.queue import QueuedRecipient
from gateway.outbound.worker import OutboundWorker, start_worker
from gateway.settings import QueueSettings
from gateway.store.models import AuditEntry
from gateway.testing.store import Store
from tests.outbound.peer import PeerController, PeerHandler, add_signing_domain

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MESSAGE = (b"From: dr@clinic.test\r\nTo: a@remote.test\r\nSubject: Compte rendu\r\n"
           b"Message-ID: <m1@clinic.test>\r\n\r\nCorps\r\n")
SETTINGS = QueueSettings(retry_schedule_minutes=(5, 15), max_age_hours=3, delay_notice_hours=1, lease_seconds=60,
                         concurrency=4, batch_size=10, connect_timeout_seconds=5, command_timeout_seconds=10,
                         worker_interval_seconds=0.05)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Submitted:
    calls: list[tuple[str | None, list[str], bytes]] = field(default_factory=list)
    fail: bool = False

    async def __call__(self, mail_from: str | None, recipients: Sequence[str], message: bytes) -> None:
        if self.fail:
            raise RuntimeError("pipeline unavailable")
        self.calls.append((mail_from, list(recipients), message))

    def reports(self) -> list[Message]:
        return [email.message_from_bytes(raw) for _f, _r, raw in self.calls]


@dataclass
class Rig:
    store: Store
    worker: OutboundWorker
    clock: Clock
    submitted: Submitted
    handler: PeerHandler
    dkim_txt: str

    def enqueue(self, *rcpts: QueuedRecipient, ret: str | None = None) -> str:
        with self.store.db.write() as s:
            return queue.enqueue(s, self.store.keys, domain="remote.test", mail_from="dr@clinic.test",
                                 recipients=list(rcpts), message=MESSAGE, ret=ret, envid="E1",
                                 now=self.clock.now, max_age=timedelta(hours=SETTINGS.max_age_hours)).uuid

    def row(self, entry_id: str) -> tuple[str, int, datetime]:
        with self.store.db.read() as s:
            r = queue.entry(s, entry_id)
            assert r is not None
            return r.status, r.attempts, r.next_attempt_at


def _status_blocks(report: Message) -> list[Message]:
    part = report.get_payload()[1]  # type: ignore[index]
    assert isinstance(part, Message) and part.get_content_type() == "message/delivery-status"
    blocks = part.get_payload()
    assert isinstance(blocks, list)
    return [b for b in blocks if isinstance(b, Message)]


@pytest.fixture
def rig(store: Store, peer: PeerController, handler: PeerHandler, client_ctx: ssl.SSLContext) -> Rig:
    with store.db.write() as s:
        add_trusted_domain(s, "remote.test", route=f"127.0.0.1:{peer.port}", dkim_policy="none")
        txt = add_signing_domain(s, store.keys, "clinic.test", "s1")
    clock, submitted = Clock(), Submitted()
    ctx = Context(db=store.db, keys=store.keys, settings=SETTINGS, hostname="mail.gateway.test",
                  patient_domain="patients.gateway.test", tls=client_ctx, submit=submitted, clock=clock)
    return Rig(store, OutboundWorker(ctx, owner="test-worker"), clock, submitted, handler, txt)


async def test_delivers_dkim_signed_with_a_success_dsn(rig: Rig) -> None:
    entry = rig.enqueue(QueuedRecipient("a@remote.test", ("SUCCESS",)))
    assert await asyncio.wait_for(rig.worker.drain(), 30) == ["delivered", "delivered"]  # message, then its DSN
    assert rig.row(entry)[0] == "sent"
    [got] = rig.handler.received
    result = verify_message(got.content, dnsfunc=pinned_dnsfunc("s1", "clinic.test", rig.dkim_txt))
    assert result.ok and result.domain == "clinic.test", result.reason
    [(mail_from, rcpts, _raw)] = rig.submitted.calls
    assert mail_from is None and rcpts == ["dr@clinic.test"]
    # The peer has no DSN extension: we report "relayed" (RFC 3461 §6.2.2).
    assert _status_blocks(rig.submitted.reports()[0])[1]["Action"] == "relayed"
    with rig.store.db.read() as s:
        actions = [a.action for a in s.execute(select(AuditEntry).order_by(AuditEntry.id)).scalars()]
    assert actions == ["queue.delivered", "queue.delivered"]


async def test_temporary_failure_is_retried_after_the_backoff(rig: Rig) -> None:
    rig.handler.rcpt_replies = {"a@remote.test": "450 4.2.1 mailbox busy"}
    entry = rig.enqueue(QueuedRecipient("a@remote.test"))
    assert await asyncio.wait_for(rig.worker.drain(), 30) == ["deferred"]
    status, attempts, nxt = rig.row(entry)
    assert (status, attempts, nxt) == ("pending", 1, T0 + timedelta(minutes=5))
    rig.clock.now = T0 + timedelta(minutes=4)
    assert await rig.worker.drain() == []
    rig.handler.rcpt_replies = {}
    rig.clock.now = T0 + timedelta(minutes=5)
    assert await asyncio.wait_for(rig.worker.drain(), 30) == ["delivered"]
    assert rig.row(entry)[:2] == ("sent", 2) and len(rig.handler.received) == 1
    assert rig.submitted.calls == []  # no NOTIFY: no success DSN


async def test_permanent_failure_bounces_through_internal_submit(rig: Rig) -> None:
    rig.handler.rcpt_replies = {"a@remote.test": "550 5.1.1 no such user"}
    entry = rig.enqueue(QueuedRecipient("a@remote.test", (), "rfc822;a@remote.test"), ret="HDRS")
    assert await asyncio.wait_for(rig.worker.drain(), 30) == ["bounced", "delivered"]
    assert rig.row(entry)[0] == "bounced"
    [(mail_from, rcpts, raw)] = rig.submitted.calls
    assert mail_from is None and rcpts == ["dr@clinic.test"]
    report = rig.submitted.reports()[0]
    assert report["From"] == "MAILER-DAEMON@mail.gateway.test" and report.get_content_type() == "multipart/report"
    per_message, per_rcpt = _status_blocks(report)
    assert per_message["Original-Envelope-Id"] == "E1"
    assert (per_rcpt["Action"], per_rcpt["Status"]) == ("failed", "5.1.1")
    assert per_rcpt["Original-Recipient"] == "rfc822;a@remote.test"
    assert b"Corps" not in raw  # RET=HDRS


async def test_notify_never_means_no_dsn(rig: Rig) -> None:
    rig.handler.rcpt_replies = {"a@remote.test": "550 5.1.1 no such user"}
    rig.enqueue(QueuedRecipient("a@remote.test", ("NEVER",)))
    assert await asyncio.wait_for(rig.worker.drain(), 30) == ["bounced"]
    assert rig.submitted.calls == []


async def test_expiry_bounces_after_one_delay_notice(rig: Rig) -> None:
    rig.handler.rcpt_replies = {"a@remote.test": "451 4.3.0 try later"}
    entry = rig.enqueue(QueuedRecipient("a@remote.test", ("FAILURE", "DELAY")))
    outcomes: list[str] = []
    for _ in range(40):  # bounded: 3 hours in 5/15-minute steps
        outcomes += await asyncio.wait_for(rig.worker.drain(), 30)
        if rig.row(entry)[0] != "pending":
            break
        rig.clock.now = rig.row(entry)[2]
    assert rig.row(entry)[0] == "expired" and outcomes[-2:] == ["expired", "delivered"]
    reports = rig.submitted.reports()
    assert [_status_blocks(r)[1]["Action"] for r in reports] == ["delayed", "failed"]
    assert _status_blocks(reports[1])[1]["Status"] == "4.4.7"  # RFC 3463: delivery time expired
    assert rig.clock.now == T0 + timedelta(hours=3)


async def test_domain_removed_from_the_trust_list_bounces(rig: Rig) -> None:
    with rig.store.db.write() as s:
        queue.enqueue(s, rig.store.keys, domain="gone.test", mail_from="dr@clinic.test",
                      recipients=[QueuedRecipient("x@gone.test")], message=MESSAGE, now=T0, max_age=timedelta(hours=1))
    assert await asyncio.wait_for(rig.worker.drain(), 30) == ["bounced", "delivered"]
    assert _status_blocks(rig.submitted.reports()[0])[1]["Status"] == "5.7.1"


async def test_local_submit_failure_is_retried(rig: Rig) -> None:
    with rig.store.db.write() as s:
        entry = queue.enqueue(s, rig.store.keys, domain="clinic.test", mail_from=None,
                              recipients=[QueuedRecipient("dr@clinic.test")], message=MESSAGE, kind="dsn",
                              now=T0, max_age=timedelta(hours=1)).uuid
    rig.submitted.fail = True
    assert await asyncio.wait_for(rig.worker.drain(), 30) == ["deferred"]
    rig.submitted.fail = False
    rig.clock.now = T0 + timedelta(minutes=5)
    assert await asyncio.wait_for(rig.worker.drain(), 30) == ["delivered"]
    assert rig.row(entry)[0] == "sent" and len(rig.submitted.calls) == 1


async def test_running_worker_delivers_and_stops(store: Store, rig: Rig, client_ctx: ssl.SSLContext) -> None:
    submitted = Submitted()
    worker = start_worker(store.db, store.keys, settings=SETTINGS, hostname="mail.gateway.test",
                          patient_domain="patients.gateway.test", tls=client_ctx, submit=submitted, owner="live",
                          clock=rig.clock)
    try:
        entry = rig.enqueue(QueuedRecipient("a@remote.test"))
        worker.wake()
        for _ in range(200):  # bounded wait: 10 s
            if rig.row(entry)[0] == "sent":
                break
            await asyncio.sleep(0.05)
    finally:
        await asyncio.wait_for(worker.stop(grace=5), 15)
    assert rig.row(entry)[0] == "sent" and len(rig.handler.received) == 1
