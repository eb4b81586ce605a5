"""Two gateways on loopback, each trusting the other, exchange mail through their queues
over verified TLS (issue 3): professional -> patient, the patient's reply back, a bounce
when the peer refuses, and a retry that succeeds once the peer comes up."""

from __future__ import annotations

import contextlib
import email
import io
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import select, update

from gateway.accounts import ins_index
from gateway.app.cli.main import main
from gateway.delivery.replies import send_reply
from gateway.outbound.mdn import build_mdn
from gateway.store.models import Conversation, HostedDomain, Patient, QueueEntry
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.ports import listen_env
from gateway.testing.smtpclient import mailbox_messages, submission_client, transaction
from gateway.testing.world import PASSWORD
from routing.ins import synthetic_ins

INS_B = "253072A07300443"  # a synthetic Corsican INS with a valid key
UNKNOWN_B = synthetic_ins(random.Random(99))  # valid key, no mailbox


@dataclass
class Side:
    name: str
    home: Path
    env: dict[str, str]
    hosted: str
    patients: str

    @property
    def pro(self) -> str:
        return f"dr.{self.name}@{self.hosted}"

    @property
    def mx(self) -> str:
        return self.env["GATEWAY__LISTEN__MX"]

    def cli(self, *args: str, stdin: str | None = None) -> None:
        saved = sys.stdin
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        try:
            assert main(["--home", str(self.home), *args]) == 0, args
        finally:
            sys.stdin = saved

    def records(self) -> str:
        """What ``gateway domain hosted dkim`` prints: the zone-file lines to publish."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.cli("domain", "hosted", "dkim")
        return out.getvalue()

    def dn(self) -> str:
        cert = x509.load_pem_x509_certificate((self.home / "tls" / "server.pem").read_bytes())
        return cert.subject.rfc4514_string()

    def dkim(self) -> tuple[str, str]:
        from gateway.app.context import Location, open_services

        svc = open_services(Location(self.home / "gateway.toml", self.home, True))
        try:
            with svc.db.read() as s:
                d = s.execute(select(HostedDomain).where(HostedDomain.name == self.hosted)).scalar_one()
                assert d.dkim_selector and d.dkim_public_key
                return d.dkim_selector, d.dkim_public_key
        finally:
            svc.close()


def make_side(root: Path, name: str) -> Side:
    env = {**listen_env(), "GATEWAY__QUEUE__WORKER_INTERVAL_SECONDS": "0.2"}
    side = Side(name, make_home(root / name, hostname=f"mx.{name}.test", patient_domain=f"patients-{name}.test"),
                env, f"clinic-{name}.test", f"patients-{name}.test")
    side.cli("domain", "hosted", "add", side.hosted)
    side.cli("pro", "add", side.pro, "--password-stdin", stdin=PASSWORD + "\n")
    return side


def trust(local: Side, remote: Side, tmp: Path) -> None:
    """Each side pins the keys the other publishes (its zone-file lines, as printed), and asks for
    DKIM on top of the certificate for the patient domain: the read receipts must verify."""
    selector, key = remote.dkim()
    keyfile = tmp / f"{remote.name}.pub"
    keyfile.write_text(key)
    local.cli("domain", "trust", "add", remote.hosted, "--dn", remote.dn(), "--route", remote.mx,
              "--dkim", f"pinned:{selector}:{keyfile}")
    [line] = [x for x in remote.records().splitlines() if f"._domainkey.{remote.patients}. " in x]
    zone = tmp / f"{remote.name}-patients.zone"
    zone.write_text(line + "\n")
    patient_selector = line.split("._domainkey.")[0]
    local.cli("domain", "trust", "add", remote.patients, "--dn", remote.dn(), "--route", remote.mx,
              "--dkim", f"pinned:{patient_selector}:{zone}", "--dkim-required")


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Side, Side]:
    a, b = make_side(tmp_path, "a"), make_side(tmp_path, "b")
    ca_a, ca_b = (a.home / "tls" / "ca.pem").read_bytes(), (b.home / "tls" / "ca.pem").read_bytes()
    for side in (a, b):
        (side.home / "tls" / "ca.pem").write_bytes(ca_a + ca_b)
    trust(a, b, tmp_path)
    trust(b, a, tmp_path)
    b.cli("patient", "add", INS_B, "--open")
    return a, b


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def send(live: LiveGateway, side: Side, to: str, subject: str = "Compte rendu") -> str:
    mid = f"<{uuid.uuid4().hex}@{side.hosted}>"
    raw = (f"From: Dr {side.name.upper()} <{side.pro}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n"
           f"Disposition-Notification-To: {side.pro}\r\n\r\nBonjour,\r\nvoici vos résultats.\r\n").encode()
    with submission_client(live, side.pro, PASSWORD) as client:
        t = transaction(client, side.pro, [to], raw)
    assert t.rcpts[0][0] == 250 and t.data is not None and t.data[0] == 250, t
    return mid


def count(messages: list[bytes], mid: str) -> int:
    return sum(1 for m in messages if f"Message-ID: {mid}".encode() in m)


def test_exchange_both_ways_with_bounce(pair: tuple[Side, Side]) -> None:
    a, b = pair
    patient_b = f"{INS_B}@{b.patients}"
    with live_gateway(a.home, env=a.env, outbound=True) as live_a, live_gateway(b.home, env=b.env,
                                                                                 outbound=True) as live_b:
        mid = send(live_a, a, patient_b)
        assert wait_for(lambda: count(mailbox_messages(live_b, ins=INS_B), mid) == 1), "not delivered to B"
        delivered = mailbox_messages(live_b, ins=INS_B)[-1]
        assert b"DKIM-Signature:" in delivered and b"d=clinic-a.test" in delivered

        # The patient answers from B's web inbox: through B's pipeline and queue to A.
        with live_b.services.db.read() as s:
            patient_id, mailbox_id = s.execute(select(Patient.id, Patient.mailbox_id)
                                               .where(ins_index.match(live_b.services.keys, s, INS_B))).one()
            conv_id = s.execute(select(Conversation.id).where(Conversation.mailbox_id == mailbox_id)).scalar_one()
        rt = live_b.gateway.mail
        reply = send_reply(rt.directory, rt.pipeline, live_b.services.keys, mailbox_id=mailbox_id,
                           patient_id=patient_id, conversation_id=conv_id, subject="Re: Compte rendu",
                           text="Merci, bien reçu.")
        assert reply.queued == 1
        assert wait_for(lambda: count(mailbox_messages(live_a, pro=a.pro), reply.message_id) == 1), "reply lost"
        answer = next(m for m in mailbox_messages(live_a, pro=a.pro) if reply.message_id.encode() in m)
        assert f"In-Reply-To: {mid}".encode() in answer
        assert b"DKIM-Signature:" in answer and f"d={b.patients};".encode() in answer

        # The read receipt B sends for its patient (null sender, From: the patient): signed with the
        # patient domain's published key, which A pins and requires (issue 17).
        receipt = build_mdn(email.message_from_bytes(delivered), reporting_ua="mx.b.test; messagerie-sante",
                            final_recipient=patient_b, now=datetime.now(UTC))
        rt.internal.submit_sync(None, [a.pro], receipt, kind="mdn")

        def receipted() -> bool:
            return any(b"disposition-notification" in m and f"Original-Message-ID: {mid}".encode() in m
                       for m in mailbox_messages(live_a, pro=a.pro))

        assert wait_for(receipted), "read receipt refused or lost"

        # B refuses an unknown patient: A bounces an RFC 3464 report to the sender.
        send(live_a, a, f"{UNKNOWN_B}@{b.patients}")

        def bounced() -> bool:
            return any(b"multipart/report" in m and b"delivery-status" in m and b"Status: 5.1.1" in m
                       for m in mailbox_messages(live_a, pro=a.pro))

        assert wait_for(bounced), "no bounce"


def test_retry_when_the_peer_comes_up(pair: tuple[Side, Side]) -> None:
    a, b = pair
    patient_b = f"{INS_B}@{b.patients}"
    with live_gateway(a.home, env=a.env, outbound=True) as live_a:
        mid = send(live_a, a, patient_b)

        def attempted() -> bool:
            with live_a.services.db.read() as s:
                return bool(s.execute(select(QueueEntry.attempts).where(QueueEntry.status == "pending")).scalar())

        assert wait_for(attempted), "A never tried to deliver"
        with live_gateway(b.home, env=b.env, outbound=True) as live_b:
            with live_a.services.db.write() as s:  # "later": make the retry due now
                s.execute(update(QueueEntry).where(QueueEntry.status == "pending")
                          .values(next_attempt_at=datetime.now(UTC)))
            assert wait_for(lambda: count(mailbox_messages(live_b, ins=INS_B), mid) == 1), "retry failed"
            time.sleep(1.0)
            assert count(mailbox_messages(live_b, ins=INS_B), mid) == 1  # exactly once
        with live_a.services.db.read() as s:
            assert s.execute(select(QueueEntry.status)).scalars().all() == ["sent"]

