"""SPEC §4 over the submission listeners, with a real server and real clients."""

from __future__ import annotations

import smtplib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.smtpclient import mailbox_messages, submission_client, transaction
from gateway.testing.world import PASSWORD, World, populate


@pytest.fixture(scope="module")
def world_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway]]:
    home = make_home(tmp_path_factory.mktemp("gw") / "home")
    world = populate(home)
    with live_gateway(home) as live:
        yield world, live


def message(sender: str, to: str, subject: str = "Compte rendu", extra: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{uuid.uuid4().hex}@clinic.test>\r\n"
            f"{extra}\r\nBonjour,\r\n.ligne qui commence par un point\r\nCordialement\r\n").encode()


@pytest.mark.parametrize(
    ("state", "code", "text"),
    [
        ("open", 250, "2.1.5 recipient OK"),
        ("provisioned", 550, "5.2.1 mailbox not open"),
        ("opposed", 550, "5.2.1"),
        ("closed", 550, "5.2.1"),
        ("unknown", 550, "5.1.1 no such patient mailbox"),
    ],
)
def test_pro_to_patient_by_mailbox_state(world_live: tuple[World, LiveGateway], state: str, code: int,
                                         text: str) -> None:
    world, live = world_live
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, [world.patient(state)], message(world.pro, world.patient(state)))
    assert t.mail[0] == 250
    assert t.rcpts[0][0] == code and t.rcpts[0][1].startswith(text)
    if code == 250:
        assert t.data is not None and t.data[0] == 250 and "message accepted for delivery" in t.data[1]


def test_delivered_message_is_stored_readable_with_trace_headers(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    before = len(mailbox_messages(live, ins=world.patients["open"]))
    body = message(world.pro, world.patient(), subject="=?utf-8?q?R=C3=A9sultats?=")
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, [world.patient()], body)
    assert t.data is not None and t.data[0] == 250
    stored = mailbox_messages(live, ins=world.patients["open"])
    assert len(stored) == before + 1
    assert stored[-1].startswith(b"Received: from client.clinic.test")
    assert stored[-1].endswith(body.replace(b"\r\n.ligne", b"\r\n.ligne"))
    assert b"ESMTPSA" in stored[-1].split(b"\r\n\r\n")[0]


def test_invalid_ins_is_refused_with_a_clear_reason(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    ins = world.patients["open"]
    bad = ins[:13] + f"{(int(ins[13:]) + 1) % 100:02d}"
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, [f"{bad}@{world.patient_domain}", f"12345@{world.patient_domain}"], None)
    assert t.rcpts[0] == (550, f"5.1.1 <{bad}@{world.patient_domain}>: invalid INS (check key)")
    assert t.rcpts[1][0] == 550 and "invalid INS" in t.rcpts[1][1]


def test_pro_to_pro_hosted_and_trusted(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, [world.colleague, f"dr.b@{world.peer.domain}"],
                        message(world.pro, world.colleague))
    assert [c for c, _ in t.rcpts] == [250, 250] and t.data is not None and t.data[0] == 250
    assert mailbox_messages(live, pro=world.colleague)


def test_unknown_hosted_user_and_untrusted_domain(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, ["nobody@clinic.test", "someone@gmail.example"], None)
    assert t.rcpts[0] == (550, "5.1.1 no such user here")
    assert t.rcpts[1] == (550, "5.7.1 recipient domain is not in the trust space")


def test_mail_from_must_be_the_account(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.colleague, [world.patient()], None)
    assert t.mail == (550, "5.7.1 sender address does not belong to your account")


def test_from_header_must_be_the_account(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    before = len(mailbox_messages(live, ins=world.patients["open"]))
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, [world.patient()], message(world.colleague, world.patient()))
    assert t.data is not None and t.data[0] == 550 and t.data[1].startswith("5.7.1")
    assert len(mailbox_messages(live, ins=world.patients["open"])) == before


def test_unauthenticated_submission_refused(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    with submission_client(live, None, None) as client:
        t = transaction(client, world.pro, [world.patient()], None)
    assert t.mail == (530, "5.7.0 authentication required")


def test_no_auth_before_tls(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    client = smtplib.SMTP("127.0.0.1", live.port("submission"), timeout=10)
    try:
        code, features = client.ehlo("client.test")
        assert code == 250 and b"AUTH" not in features and b"STARTTLS" in features
        code, text = client.docmd("AUTH", "PLAIN AGRtYXJ0aW4AcGFzcw==")
        assert code == 538 and text.startswith(b"5.7.11")
        assert client.mail(world.pro)[0] == 530
    finally:
        client.close()


def test_wrong_password_refused(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    with pytest.raises(smtplib.SMTPAuthenticationError) as err:
        submission_client(live, world.pro, "not the password")
    assert err.value.smtp_code == 535


def test_implicit_tls_submission(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    with submission_client(live, world.pro, PASSWORD, implicit=True) as client:
        t = transaction(client, world.pro, [world.patient()], message(world.pro, world.patient()))
    assert t.data is not None and t.data[0] == 250


def test_size_and_recipient_limits(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    with submission_client(live, world.pro, PASSWORD) as client:
        assert client.has_extn("size") and int(client.esmtp_features["size"]) == 26214400
        t = transaction(client, world.pro, [world.patient()], None, mail_options=["SIZE=30000000"])
        assert t.mail[0] == 552 and t.mail[1].startswith("5.3.4")
        t = transaction(client, world.pro, [world.colleague] * 101, None)
        assert [c for c, _ in t.rcpts[:100]] == [250] * 100 and t.rcpts[100][0] == 452


def test_dsn_parameters_are_accepted(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, [world.patient()], message(world.pro, world.patient()),
                        mail_options=["RET=HDRS", "ENVID=abc+2Bdef"],
                        rcpt_options=["NOTIFY=SUCCESS,FAILURE", f"ORCPT=rfc822;{world.patient()}"])
    assert t.mail[0] == 250 and t.rcpts[0][0] == 250 and t.data is not None and t.data[0] == 250


def test_aiosmtplib_client(world_live: tuple[World, LiveGateway]) -> None:
    import asyncio
    import ssl

    import aiosmtplib

    world, live = world_live

    async def send() -> tuple[dict[str, object], str]:
        ctx = ssl.create_default_context(cafile=live.ca_file)
        return await aiosmtplib.send(message(world.pro, world.patient()), sender=world.pro,
                                     recipients=[world.patient()], hostname="127.0.0.1",
                                     port=live.port("submission"), start_tls=True, tls_context=ctx,
                                     username=world.pro, password=PASSWORD, timeout=30)  # type: ignore[return-value]

    errors, reply = asyncio.run(send())
    assert errors == {} and "message accepted for delivery" in reply


def test_swaks_client(world_live: tuple[World, LiveGateway], tmp_path: Path) -> None:
    import shutil
    import subprocess

    from tests.conftest import require

    world, live = world_live
    require(None if shutil.which("swaks") else "swaks not installed", "Debian swaks")
    body = tmp_path / "msg.eml"
    body.write_bytes(message(world.pro, world.patient()))
    result = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(live.port("submission")), "--tls",
         "--tls-ca-path", live.ca_file, "--tls-verify", "--auth", "PLAIN", "--auth-user", world.pro,
         "--auth-password", PASSWORD, "--from", world.pro, "--to", world.patient(), "--data", str(body),
         "--helo", "swaks.clinic.test", "--timeout", "30"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "250 2.0.0 message accepted for delivery" in result.stdout
    refused = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(live.port("submission")), "--tls",
         "--tls-ca-path", live.ca_file, "--auth", "PLAIN", "--auth-user", world.pro, "--auth-password", PASSWORD,
         "--from", world.pro, "--to", world.patient("provisioned"), "--timeout", "30"],
        capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0 and "550 5.2.1 mailbox not open" in refused.stdout


def test_submission_adds_date_and_message_id_when_missing(world_live: tuple[World, LiveGateway]) -> None:
    """RFC 6409 §8.3: the MSA completes a message whose client left out Date: and Message-ID:."""
    world, live = world_live
    body = f"From: {world.pro}\r\nTo: {world.patient()}\r\nSubject: sans date\r\n\r\nBonjour\r\n".encode()
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, [world.patient()], body)
    assert t.data is not None and t.data[0] == 250
    head = mailbox_messages(live, ins=world.patients["open"])[-1].split(b"\r\n\r\n")[0].split(b"\r\n")
    assert sum(1 for line in head if line.startswith(b"Date: ")) == 1
    assert sum(1 for line in head if line.startswith(b"Message-ID: <")) == 1
