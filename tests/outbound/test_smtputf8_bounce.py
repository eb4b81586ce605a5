"""Issue 17 item 6, outbound end to end: a hosted professional submits a message that needs
SMTPUTF8 (raw UTF-8 headers, RFC 6532) to a trusted operator whose MX (a loopback aiosmtpd,
verified TLS, no SMTPUTF8 offered) cannot take it. Nothing is downgraded or sent: the queue
worker fails it with ``5.6.7`` and the DSN reaches the professional's INBOX.

``tests/outbound/test_client.py`` covers the client's decision per case against the same kind of peer.
"""

from __future__ import annotations

import email
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest

from gateway.app.cli.main import main as cli_main
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.ports import free_port
from gateway.testing.sink import Sink, running_sink
from gateway.testing.smtpclient import mailbox_messages, submission_client, transaction
from gateway.testing.world import PASSWORD, World, issue_client_cert, populate

REMOTE = "remote.test"


@dataclass
class Rig:
    home: Path
    world: World
    live: LiveGateway
    sink: Sink


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    root = tmp_path_factory.mktemp("smtputf8-out")
    port = free_port()
    home = make_home(root / "home", extra_config="\n[queue]\nworker_interval_seconds = 0.2\n")
    world = populate(home)
    # The peer's certificate from the test CA (the worker verifies it and its DN against the entry).
    cert, key, dn = issue_client_cert(home, root / "remote", "127.0.0.1", "Remote Operator")
    assert cli_main(["--home", str(home), "domain", "trust", "add", REMOTE, "--dn", dn,
                     "--route", f"127.0.0.1:{port}"]) == 0
    with running_sink(port, str(cert), str(key), smtputf8=False) as sink, live_gateway(home, outbound=True) as live:
        yield Rig(home, world, live, sink)


def _dsn(rig: Rig, before: int) -> Message:
    for _ in range(300):  # bounded wait: 30 s
        stored = mailbox_messages(rig.live, pro=rig.world.pro)
        if len(stored) > before:
            return email.message_from_bytes(stored[-1])
        time.sleep(0.1)
    raise AssertionError(f"no DSN reached the professional's INBOX; the peer got {rig.sink.messages!r}")


def _status_blocks(report: Message) -> list[Message]:
    part = report.get_payload()[1]  # type: ignore[index]
    assert isinstance(part, Message) and part.get_content_type() == "message/delivery-status"
    blocks = part.get_payload()
    assert isinstance(blocks, list)
    return [b for b in blocks if isinstance(b, Message)]


@pytest.mark.parametrize(("rcpt", "subject"), [
    (f"a@{REMOTE}", "Résultats d'analyse"),  # UTF-8 headers only
    (f"réception@{REMOTE}", "Compte rendu"),  # a UTF-8 recipient address
])
def test_a_message_needing_smtputf8_to_a_peer_without_it_bounces_5_6_7(rig: Rig, rcpt: str, subject: str) -> None:
    world = rig.world
    before = len(mailbox_messages(rig.live, pro=world.pro))
    mid = f"<{uuid.uuid4().hex}@clinic.test>"
    raw = (f"From: Dr Martin <{world.pro}>\r\nTo: Réception <{rcpt}>\r\nSubject: {subject}\r\n"
           f"Message-ID: {mid}\r\nDate: Mon, 23 Nov 2026 09:00:00 +0100\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nBonjour.\r\n").encode()
    with submission_client(rig.live, world.pro, PASSWORD) as client:
        assert client.has_extn("smtputf8")
        t = transaction(client, world.pro, [rcpt], raw, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    assert t.mail[0] == 250 and t.rcpts[0][0] == 250, t
    assert t.data is not None and t.data[0] == 250, t.data

    report = _dsn(rig, before)
    assert report.get_content_type() == "multipart/report", report.get_content_type()
    assert report["Subject"] is not None and report["From"].startswith("MAILER-DAEMON@")
    per_rcpt = _status_blocks(report)[1]
    assert (per_rcpt["Action"], per_rcpt["Status"]) == ("failed", "5.6.7"), str(per_rcpt)
    assert "SMTPUTF8" in str(per_rcpt["Diagnostic-Code"])
    assert mid not in rig.sink.message_ids()  # nothing was downgraded and sent
