"""``gateway queue list|show|retry|bounce|cancel``: the console's operations at the command line."""

from __future__ import annotations

import asyncio
import email
import email.header
import json
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.message import Message

from sqlalchemy import select

from gateway.operations.common import cli_actor
from gateway.outbound.process import Context
from gateway.outbound.queue import QueuedRecipient, enqueue
from gateway.outbound.worker import OutboundWorker
from gateway.store.models import AuditEntry, QueueEntry
from gateway.testing.world import World
from tests.admin.conftest import cli, opened

MESSAGE = b"From: dr.martin@clinic.test\r\nSubject: Secret clinique\r\n\r\nCorps confidentiel\r\n"


def _enqueue(world: World, *, domain: str, mail_from: str | None, to: str, kind: str = "message") -> str:
    with opened(world.home) as svc, svc.db.write() as session:
        entry = enqueue(session, svc.keys, domain=domain, mail_from=mail_from,
                        recipients=[QueuedRecipient(to, ("FAILURE",))], message=MESSAGE, kind=kind,
                        envid="ENV1", now=datetime.now(UTC), max_age=timedelta(days=5))
        entry.next_attempt_at = datetime.now(UTC) + timedelta(hours=1)
        return entry.uuid


def _row(world: World, uuid: str) -> QueueEntry:
    with opened(world.home) as svc, svc.db.read() as session:
        row = session.execute(select(QueueEntry).where(QueueEntry.uuid == uuid)).scalar_one()
        session.expunge(row)
        return row


def test_list_filters_and_show_envelope_without_content(world: World) -> None:
    msg = _enqueue(world, domain="hopital.example", mail_from=world.pro, to="dr.x@hopital.example")
    patient = world.patients["open"]
    mdn = _enqueue(world, domain="hopital.example", mail_from=world.patient(), to="dr.y@hopital.example", kind="mdn")
    note = _enqueue(world, domain="perso.example", mail_from=None, to="someone@perso.example", kind="notification")

    code, out, err = cli(world.home, "queue", "list", "--json")
    assert code == 0, err
    listing = json.loads(out)
    assert {e["id"] for e in listing["entries"]} == {msg, mdn, note} and listing["counts"] == {"pending": 3}
    code, out, _ = cli(world.home, "queue", "list", "--json", "--domain", "HOPITAL.example", "--kind", "mdn")
    assert [e["id"] for e in json.loads(out)["entries"]] == [mdn]
    code, out, _ = cli(world.home, "queue", "list", "--status", "sent", "--json")
    assert json.loads(out)["entries"] == []
    code, out, _ = cli(world.home, "queue", "list")
    assert code == 0 and "queue: pending 3" in out and msg in out and "hopital.example" in out
    code, _, err = cli(world.home, "queue", "list", "--limit", "0")
    assert code == 1 and err == "gateway: error: --limit: from 1 to 10000\n"
    code, _, err = cli(world.home, "queue", "list", "--domain", "not a domain")
    assert code == 1 and err.startswith("gateway: error: invalid domain") and err.count("\n") == 1

    code, out, _ = cli(world.home, "queue", "show", mdn, "--json")
    shown = json.loads(out)
    assert code == 0 and shown["id"] == mdn and shown["status"] == "pending"
    env = shown["envelope"]
    assert env["recipients"] == [{"address": "dr.y@hopital.example", "notify": ["FAILURE"]}]
    assert env["envid"] == "ENV1" and patient not in out and env["mail_from"].endswith("@" + world.patient_domain)
    code, out, _ = cli(world.home, "queue", "show", note)
    assert code == 0 and "s***@perso.example" in out and "someone@" not in out and "NOTIFY=FAILURE" in out
    code, out, _ = cli(world.home, "queue", "show", msg)
    assert code == 0 and f"mail_from:          {world.pro}" in out
    assert "Secret" not in out and "confidentiel" not in out
    code, _, err = cli(world.home, "queue", "show", "0" * 32)
    assert code == 1 and err == f"gateway: error: no queue entry with id {'0' * 32}\n"

    with opened(world.home) as svc, svc.db.read() as session:
        shows = session.execute(select(AuditEntry.actor, AuditEntry.subject_ref)
                                .where(AuditEntry.action == "queue.admin.show")).all()
    assert {tuple(s) for s in shows} == {(cli_actor().audit_actor, f"queue:{u}") for u in (mdn, note, msg)}


def test_retry_and_cancel_then_refusals(world: World) -> None:
    a = _enqueue(world, domain="hopital.example", mail_from=world.pro, to="dr.x@hopital.example")
    b = _enqueue(world, domain="hopital.example", mail_from=world.pro, to="dr.x@hopital.example")
    code, out, _ = cli(world.home, "queue", "retry", a)
    assert code == 0 and "due now" in out and _row(world, a).next_attempt_at <= datetime.now(UTC)
    code, out, _ = cli(world.home, "queue", "cancel", b)
    assert code == 0 and "cancelled" in out and _row(world, b).status == "cancelled"
    code, _, err = cli(world.home, "queue", "cancel", b)
    assert code == 1 and err == "gateway: error: entry already finished (cancelled)\n"
    code, _, err = cli(world.home, "queue", "retry", "nope")
    assert code == 1 and "no queue entry" in err
    code, _, err = cli(world.home, "queue", "explode", a)
    assert code == 2 and "invalid choice" in err
    with opened(world.home) as svc, svc.db.write() as session:  # an entry being delivered right now
        row = session.execute(select(QueueEntry).where(QueueEntry.uuid == a)).scalar_one()
        row.lease_owner, row.lease_until = "elsewhere/1", datetime.now(UTC) + timedelta(minutes=5)
    code, _, err = cli(world.home, "queue", "bounce", a)
    assert code == 1 and "being delivered right now" in err and _row(world, a).status == "pending"
    code, out, _ = cli(world.home, "audit", "verify")
    assert code == 0


class Submitted:
    def __init__(self) -> None:
        self.calls: list[tuple[str | None, list[str], bytes]] = []

    async def __call__(self, mail_from: str | None, recipients: Sequence[str], message: bytes) -> None:
        self.calls.append((mail_from, list(recipients), message))


def test_bounce_makes_the_worker_send_an_rfc3464_failure_notice(world: World) -> None:
    entry = _enqueue(world, domain="hopital.example", mail_from=world.pro, to="dr.x@hopital.example")
    code, out, _ = cli(world.home, "queue", "bounce", entry)
    assert code == 0 and "notifies the sender" in out
    submitted = Submitted()
    with opened(world.home) as svc:
        ctx = Context(db=svc.db, keys=svc.keys, settings=svc.settings.queue, hostname="mx.gateway.test",
                      patient_domain=world.patient_domain, tls=ssl.create_default_context(), submit=submitted,
                      clock=lambda: datetime.now(UTC))
        outcomes = asyncio.run(asyncio.wait_for(OutboundWorker(ctx, owner="test").drain(), 30))
    assert outcomes == ["bounced", "delivered"]  # the entry, then its DSN delivered locally to the sender
    row = _row(world, entry)
    assert row.status == "bounced" and row.last_error == "5.0.0"  # the codes in clear, the text sealed
    code, out, _ = cli(world.home, "queue", "show", entry, "--json")
    assert code == 0 and "cancelled by the operator" in json.loads(out)["last_error"]
    ((mail_from, rcpts, raw),) = submitted.calls
    assert mail_from is None and rcpts == [world.pro]
    report = email.message_from_bytes(raw)
    assert report.get_content_type() == "multipart/report" and report.get_param("report-type") == "delivery-status"
    status = report.get_payload()[1]  # type: ignore[index]
    assert isinstance(status, Message) and status.get_content_type() == "message/delivery-status"
    blocks = [b for b in status.get_payload() if isinstance(b, Message)]
    assert blocks[1]["Action"] == "failed" and blocks[1]["Final-Recipient"] == "rfc822; dr.x@hopital.example"
    # issue 17: the sender learns the operator cancelled it, not that delivery time expired (4.4.7)
    assert blocks[1]["Status"] == "5.0.0" and "cancelled by the operator" in blocks[1]["Diagnostic-Code"]
    human = report.get_payload()[0]  # type: ignore[index]
    assert isinstance(human, Message)
    payload = human.get_payload(decode=True)
    assert isinstance(payload, bytes)
    text = payload.decode()
    assert "cancelled by the operator" in text and "annulée par l'opérateur" in text
    assert "expired" not in text and "expiré" not in text
    assert "annul" in str(email.header.make_header(email.header.decode_header(report["Subject"])))
