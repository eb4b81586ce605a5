"""Debian's Postfix as the trusted operator ``hopital.test`` (issue 17, "a real Postfix peer").

Postfix runs from a private configuration (``gateway.testing.postfix``) with its own
certificate issued by the gateway home's development CA: it relays its users' mail to our MX
with ``smtp_tls_security_level = verify`` and that certificate as client certificate (our
trust entry binds its DN), receives our outbound over STARTTLS (our client verifies its
certificate against the same CA, and its DN against the entry), and sends its own bounces and
success notices (null sender, unsigned) back to us. Postfix's concurrency, retry and bounce
settings are its defaults.

Both stores: SQLite by default, PostgreSQL with ``GATEWAY_TEST_STORE=postgresql``.
"""

from __future__ import annotations

import email
import imaplib
import io
import json
import random
import re
import smtplib
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message

import pytest
from sqlalchemy import func, select, update

from crypto.dkim import pinned_dnsfunc, verify_message
from gateway.accounts import ins_index
from gateway.accounts.patients import provision
from gateway.app.cli.main import main as cli_main
from gateway.store.models import Folder, Patient, QueueEntry
from gateway.store.models import Message as StoredMessage
from gateway.testing import postfix
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.ports import listen_env
from gateway.testing.postfix import PostfixPeer, Relay, running_postfix
from gateway.testing.smtpclient import mailbox_messages, submission_client, transaction
from gateway.testing.world import HOSTED, PASSWORD, World, populate
from routing.ins import synthetic_ins
from routing.reasons import RCPT_MAILBOX_CLOSED, RCPT_NO_SUCH_PATIENT
from tests.conftest import require
from tests.web.kit import activate_http, login_http
from tests.web.kit import provision as provision_with_code

OPERATOR = "hopital.test"
OPERATOR_HOST = f"mx.{OPERATOR}"
GATEWAY_HOST = "mx.gateway.test"  # our server.hostname, a DNS name of our MX certificate
USERS = ("dr.bernard", "secretariat", "dr.retry", "dr.dsn")
BURST = 500
BURST_PATIENTS = 10


@dataclass
class Rig:
    world: World
    live: LiveGateway
    postfix: PostfixPeer

    def cli(self, *args: str) -> str:
        out = io.StringIO()
        with redirect_stdout(out):
            assert cli_main(["--home", str(self.world.home), *args]) == 0, args
        return out.getvalue()


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    require(postfix.problem(), "Postfix")
    home = make_home(tmp_path_factory.mktemp("postfix-peer") / "home", hostname=GATEWAY_HOST)
    world = populate(home, peer_domain=OPERATOR)
    env = {**listen_env(), "GATEWAY__QUEUE__WORKER_INTERVAL_SECONDS": "0.2"}
    mx_host, mx_port = env["GATEWAY__LISTEN__MX"].rsplit(":", 1)
    relay = Relay(domains=(world.patient_domain, HOSTED), host=mx_host, port=int(mx_port),
                  cert_name=GATEWAY_HOST)
    with running_postfix(hostname=OPERATOR_HOST, domain=OPERATOR, users=USERS, relay=relay,
                         cert_file=world.peer.cert_file, key_file=world.peer.key_file,
                         ca_file=home / "tls" / "ca.pem") as pf:
        # As an admin would: our trust entry for the operator routes to its Postfix.
        assert cli_main(["--home", str(home), "domain", "trust", "set", OPERATOR, "--route", pf.route]) == 0
        with live_gateway(home, env=env, outbound=True) as live:
            yield Rig(world, live, pf)


# -- helpers ----------------------------------------------------------------------------------


def new_mid(domain: str) -> str:
    return f"<{uuid.uuid4().hex}@{domain}>"


def letter(author: str, to: str, mid: str, *, subject: str = "Compte rendu", extra: str = "") -> bytes:
    return (f"From: {author}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 09:00:00 +0100\r\n"
            f"Message-ID: {mid}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n{extra}\r\nBonjour,\r\nvoici le compte rendu.\r\n").encode()


def wait_for(check: Callable[[], bool], timeout: float, what: str, pf: PostfixPeer, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s{pf.log_tail()}")
        time.sleep(interval)


def with_mid(mid: str) -> Callable[[bytes], bool]:
    return lambda raw: f"Message-ID: {mid}".encode() in raw


def submit(rig: Rig, rcpts: list[str], message: bytes, *, mail_options: list[str] | None = None,
           rcpt_options: list[str] | None = None) -> None:
    """Our hosted professional sends through submission (our queue then delivers to Postfix)."""
    with submission_client(rig.live, rig.world.pro, PASSWORD) as client:
        t = transaction(client, rig.world.pro, rcpts, message, mail_options, rcpt_options)
    assert all(code == 250 for code, _ in t.rcpts) and t.data is not None and t.data[0] == 250, t


def imap_inbox(rig: Rig) -> list[bytes]:
    """Our professional's INBOX, as their mail client reads it (IMAP, STARTTLS)."""
    with imaplib.IMAP4("127.0.0.1", rig.live.port("imap"), timeout=30) as conn:
        conn.starttls(ssl.create_default_context(cafile=rig.live.ca_file))
        conn.login(rig.world.pro, PASSWORD)
        conn.select("INBOX", readonly=True)
        _, data = conn.uid("SEARCH", "ALL")
        out: list[bytes] = []
        for uid in data[0].split():
            _, parts = conn.uid("FETCH", uid, "(BODY.PEEK[])")
            out.extend(p[1] for p in parts if isinstance(p, tuple))
        return out


def wait_inbox(rig: Rig, match: Callable[[bytes], bool], what: str, timeout: float = 30.0) -> bytes:
    found: list[bytes] = []

    def check() -> bool:
        found[:] = [m for m in imap_inbox(rig) if match(m)]
        return bool(found)

    wait_for(check, timeout, what, rig.postfix, interval=0.5)  # an IMAP login each time
    assert len(found) == 1, f"{what}: {len(found)} copies"
    return found[0]


def status_blocks(raw: bytes) -> tuple[Message, list[Message]]:
    """An RFC 3464 report: the report message, then its per-message and per-recipient fields."""
    report = email.message_from_bytes(raw)
    assert report.get_content_type() == "multipart/report", report.get_content_type()
    assert report.get_param("report-type") == "delivery-status"
    [part] = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"]
    blocks = part.get_payload()
    assert isinstance(blocks, list)
    return report, [b for b in blocks if isinstance(b, Message)]


def deliveries_in(rig: Rig, ins: str) -> list[bytes]:
    return mailbox_messages(rig.live, ins=ins)


def postfix_log_since(pf: PostfixPeer, offset: int) -> list[str]:
    return pf.log()[offset:].splitlines()


# -- scenarios --------------------------------------------------------------------------------


def test_delivery_both_ways(rig: Rig) -> None:
    world, pf = rig.world, rig.postfix
    # Postfix -> our MX: a hopital.test professional writes to an open patient.
    ins = world.patients["open"]
    mid_in = new_mid(OPERATOR)
    start = len(pf.log())
    queue_id = pf.send(pf.address("dr.bernard"), [world.patient("open")],
                       letter(f"Dr Bernard <{pf.address('dr.bernard')}>", world.patient("open"), mid_in))
    wait_for(lambda: any(with_mid(mid_in)(m) for m in deliveries_in(rig, ins)), 30, "stored for the patient", pf)
    [stored] = [m for m in deliveries_in(rig, ins) if with_mid(mid_in)(m)]
    assert b"voici le compte rendu." in stored and b"dr.bernard@hopital.test" in stored
    # Stored means committed before our 250: Postfix logs "status=sent" once it has read it.
    delivered = f"{queue_id}: to=<{world.patient('open')}>"
    wait_for(lambda: any(delivered in line and "status=sent" in line for line in postfix_log_since(pf, start)), 30,
             "Postfix logged the delivery as sent", pf)
    log = postfix_log_since(pf, start)
    # Postfix verified our MX certificate (smtp_tls_security_level = verify) and presented its own.
    assert any("Verified TLS connection established to" in line and "client-signature" in line for line in log), log

    # Our queue -> Postfix: our professional writes to a hopital.test professional.
    mid_out = new_mid(HOSTED)
    submit(rig, [pf.address("dr.bernard")], letter(world.pro, pf.address("dr.bernard"), mid_out))
    got = pf.wait_message("dr.bernard", with_mid(mid_out))
    assert b"voici le compte rendu." in got
    assert got.startswith(f"Return-Path: <{world.pro}>".encode()), got[:200]
    # Postfix's smtpd logged our client's TLS handshake (through postlogd, which may lag behind the
    # maildir write under load: seen in a parallel CI run)
    wait_for(lambda: any("TLS connection established from" in line for line in postfix_log_since(pf, start)), 30,
             "Postfix logged our client's TLS connection", pf)

    def sent() -> bool:
        with rig.live.services.db.read() as s:
            statuses = s.execute(select(QueueEntry.status).where(QueueEntry.domain == OPERATOR)).scalars().all()
        return bool(statuses) and set(statuses) == {"sent"}

    wait_for(sent, 10, "our queue entry marked sent", pf)


def test_refused_by_our_mx_bounces_to_the_postfix_sender(rig: Rig) -> None:
    """Our 550 at RCPT (unknown and closed patients): Postfix bounces to its local sender."""
    world, pf = rig.world, rig.postfix
    unknown, closed = world.patient("unknown"), world.patient("closed")
    closed_before = len(deliveries_in(rig, world.patients["closed"]))
    mid = new_mid(OPERATOR)
    pf.send(pf.address("secretariat"), [unknown, closed], letter(pf.address("secretariat"), unknown, mid))
    raw = pf.wait_message("secretariat", lambda m: b"multipart/report" in m and mid.encode() in m)
    report, blocks = status_blocks(raw)
    assert report["From"].endswith(f"<MAILER-DAEMON@{OPERATOR_HOST}>"), report["From"]
    assert report["Subject"] == "Undelivered Mail Returned to Sender"
    failed = {b["Final-Recipient"].split(";")[1].strip().lower(): b for b in blocks[1:]}
    assert set(failed) == {unknown.lower(), closed.lower()}
    # Our replies, in our words, reach the sender (RFC 3464 Diagnostic-Code, as Postfix quotes them).
    for address, reply in ((unknown, RCPT_NO_SUCH_PATIENT), (closed, RCPT_MAILBOX_CLOSED)):
        block = failed[address.lower()]
        assert (block["Action"], block["Status"]) == ("failed", reply.enhanced), block
        diagnostic = " ".join(block["Diagnostic-Code"].split())
        assert diagnostic == f"smtp; {reply.code} {reply.enhanced} {reply.text}", diagnostic
    assert len(deliveries_in(rig, world.patients["closed"])) == closed_before  # nothing stored
    assert pf.maildir("postmaster") == []  # no double bounce at the operator


def test_refused_by_postfix_bounces_to_our_professional(rig: Rig) -> None:
    """Postfix refuses an unknown local user: our RFC 3464 bounce reaches the professional's INBOX."""
    pf = rig.postfix
    nobody = pf.address("personne")
    mid = new_mid(HOSTED)
    submit(rig, [nobody], letter(rig.world.pro, nobody, mid), rcpt_options=["NOTIFY=FAILURE"])
    raw = wait_inbox(rig, lambda m: b"multipart/report" in m and mid.encode() in m, "the bounce")
    report, blocks = status_blocks(raw)
    assert report["From"] == f"MAILER-DAEMON@{GATEWAY_HOST}"
    [rcpt] = blocks[1:]
    assert rcpt["Final-Recipient"].lower() == f"rfc822; {nobody}"
    assert (rcpt["Action"], rcpt["Status"]) == ("failed", "5.1.1")
    diagnostic = " ".join(rcpt["Diagnostic-Code"].split())
    assert diagnostic.startswith("smtp; 550 5.1.1") and "User unknown in virtual mailbox table" in diagnostic
    assert pf.maildir("personne") == []


def test_temporary_failure_at_postfix_is_retried(rig: Rig) -> None:
    """Postfix answers 451 once (an access check); our queue retries and delivers once."""
    pf, db = rig.postfix, rig.live.services.db
    rcpt = pf.address("dr.retry")
    pf.defer({rcpt: "451 4.3.0 mailbox being moved, try again later"})
    mid = new_mid(HOSTED)
    try:
        submit(rig, [rcpt], letter(rig.world.pro, rcpt, mid))

        def deferred() -> bool:
            with db.read() as s:
                rows = s.execute(select(QueueEntry.status, QueueEntry.attempts, QueueEntry.last_error)
                                 .where(QueueEntry.domain == OPERATOR, QueueEntry.status == "pending")).all()
            return any(attempts >= 1 and "451" in (error or "") for _s, attempts, error in rows)

        wait_for(deferred, 30, "our queue defers on Postfix's 451", pf)
    finally:
        pf.defer({})
    assert any("451 4.3.0" in line and "mailbox being moved" in line for line in pf.log().splitlines())
    assert pf.maildir("dr.retry") == []
    with db.write() as s:  # "later": make the retry due now (the schedule's shortest delay is a minute)
        s.execute(update(QueueEntry).where(QueueEntry.domain == OPERATOR, QueueEntry.status == "pending")
                  .values(next_attempt_at=datetime.now(UTC)))
    pf.wait_message("dr.retry", with_mid(mid))
    time.sleep(1.0)
    assert sum(1 for m in pf.raw_messages("dr.retry") if with_mid(mid)(m)) == 1  # exactly once
    with db.read() as s:
        assert not s.execute(select(QueueEntry.id).where(QueueEntry.domain == OPERATOR,
                                                         QueueEntry.status == "pending")).all()


def test_success_dsn_from_postfix_reaches_our_professional(rig: Rig) -> None:
    """NOTIFY=SUCCESS: Postfix delivers and sends its (unsigned, null-sender) success notice
    back through our MX into the professional's INBOX."""
    pf = rig.postfix
    rcpt = pf.address("dr.dsn")
    envid = uuid.uuid4().hex
    mid = new_mid(HOSTED)
    submit(rig, [rcpt], letter(rig.world.pro, rcpt, mid), mail_options=[f"ENVID={envid}", "RET=HDRS"],
           rcpt_options=["NOTIFY=SUCCESS", f"ORCPT=rfc822;{rcpt}"])
    pf.wait_message("dr.dsn", with_mid(mid))
    raw = wait_inbox(rig, lambda m: f"Original-Envelope-Id: {envid}".encode() in m, "the success DSN")
    report, blocks = status_blocks(raw)
    assert report["From"].endswith(f"<MAILER-DAEMON@{OPERATOR_HOST}>"), report["From"]
    assert "DKIM-Signature" not in report  # Postfix does not sign its notices
    assert blocks[0]["Reporting-MTA"] == f"dns; {OPERATOR_HOST}"
    [delivered] = blocks[1:]
    assert (delivered["Action"], delivered["Status"]) == ("delivered", "2.0.0")
    assert "".join(delivered["Original-Recipient"].split()).lower() == f"rfc822;{rcpt}"
    time.sleep(1.0)
    # Postfix offered DSN, so the notice is its own: our queue adds no "relayed" report.
    assert sum(1 for m in imap_inbox(rig) if envid.encode() in m) == 1


def test_read_receipt_round_trip(rig: Rig) -> None:
    """A hopital.test professional asks for a read receipt; the patient opens the message in
    the web inbox; our MDN (DKIM-signed for the patient domain) lands in Postfix's Maildir."""
    world, pf, live = rig.world, rig.postfix, rig.live
    ins = synthetic_ins(random.Random(4242))
    account = activate_http(live, ins, provision_with_code(world.home, ins))
    patient = f"{ins}@{world.patient_domain}"
    author = pf.address("dr.bernard")
    mid = new_mid(OPERATOR)
    pf.send(author, [patient], letter(f"Dr Bernard <{author}>", patient, mid, subject="Résultats",
                                      extra=f"Disposition-Notification-To: {author}\r\n"))
    wait_for(lambda: any(with_mid(mid)(m) for m in deliveries_in(rig, ins)), 30, "stored for the patient", pf)
    with login_http(live, account) as web:
        [conversation] = set(re.findall(r'href="(/conversations/\d+)"', web.get("/").text))
        [message] = set(re.findall(r'href="(/messages/\d+)"', web.get(conversation).text))
        assert web.get(message).status_code == 200  # the patient opens it
    raw = pf.wait_message("dr.bernard", lambda m: f"Original-Message-ID: {mid}".encode() in m)
    mdn = email.message_from_bytes(raw)
    assert raw.startswith(b"Return-Path: <>"), raw[:100]
    assert mdn.get_content_type() == "multipart/report" and mdn.get_param("report-type") == "disposition-notification"
    assert patient in str(mdn["From"])
    [part] = [p for p in mdn.walk() if p.get_content_type() == "message/disposition-notification"]
    assert "displayed" in part.as_string()
    # Its signature verifies against the patient domain's record as we publish it.
    [key] = [k for k in json.loads(rig.cli("domain", "hosted", "dkim", "--json"))
             if k["domain"] == world.patient_domain]
    result = verify_message(raw, dnsfunc=pinned_dnsfunc(key["selector"], world.patient_domain, key["value"]))
    assert result.ok and result.domain == world.patient_domain, result.reason


def test_burst_from_postfix_with_its_default_concurrency(rig: Rig) -> None:
    """500 messages queued at once at Postfix for our patients: Postfix delivers them with its
    default concurrency (up to 20 connections to our MX); none is deferred, all are stored."""
    world, pf, live = rig.world, rig.postfix, rig.live
    rng = random.Random(500)
    patients = [synthetic_ins(rng) for _ in range(BURST_PATIENTS)]
    now = datetime.now(UTC)
    with live.services.db.write() as s:
        for ins in patients:
            provision(s, live.services.keys, ins, email=None, now=now, opposition_window=timedelta(days=42),
                      code_validity=timedelta(days=42), open_now=True)
    with live.services.db.read() as s:
        ids = list(ins_index.find_ids(s, live.services.keys.index_keys(s), patients).values())
        mailboxes = s.execute(select(Patient.mailbox_id).where(Patient.id.in_(ids))).scalars().all()

    def stored() -> int:
        with live.services.db.read() as s:
            return int(s.execute(select(func.count(StoredMessage.id))
                                 .join(Folder, (StoredMessage.mailbox_id == Folder.mailbox_id)
                                       & (StoredMessage.folder_id == Folder.id))
                                 .where(Folder.mailbox_id.in_(mailboxes))).scalar_one())

    start = len(pf.log())
    author = pf.address("secretariat")
    errors: list[BaseException] = []

    def inject(part: int) -> None:  # five of the operator's users' clients submitting at once
        try:
            with smtplib.SMTP("127.0.0.1", pf.port, timeout=60) as client:
                client.ehlo("poste.hopital.test")
                for n in range(part, BURST, 5):
                    to = f"{patients[n % BURST_PATIENTS]}@{world.patient_domain}"
                    postfix.submit(client, author, [to], letter(author, to, new_mid(OPERATOR), subject=f"Lot {n}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=inject, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    # Done when every message is either stored here or parked in Postfix's deferred queue
    # (its first retry is 300 s away by default: a deferral shows as a message waiting there).
    wait_for(lambda: all(q["queue_name"] == "deferred" for q in pf.queue()), 120, "Postfix's queue settled", pf)
    parked = pf.queue()
    log = postfix_log_since(pf, start)
    deferred = [line for line in log if "status=deferred" in line]
    sent = [line for line in log if "status=sent" in line and f"relay=127.0.0.1[127.0.0.1]:{live.port('mx')}" in line]
    assert not deferred and not parked, f"{len(parked)} deferred, e.g. {deferred[:2]}"
    assert len(sent) == BURST and stored() == BURST
