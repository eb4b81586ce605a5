"""``[auth] password_login`` and the per-account choice (issue 19), on a live gateway over
Python's imaplib and smtplib on loopback (both stores).

Deployment off: LOGIN and AUTH=PLAIN leave IMAP CAPABILITY (LOGINDISABLED instead, RFC 3501
§6.2.3), AUTH leaves the submission EHLO, and each of IMAP LOGIN, AUTHENTICATE PLAIN and SMTP
AUTH PLAIN/LOGIN is refused without a password being checked. Account off: the same answers
as a wrong password, after the password was checked, so the setting is not revealed.
"""

from __future__ import annotations

import base64
import imaplib
import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.operations import pros
from gateway.operations.common import Actor
from gateway.store.models import AuditEntry
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.ports import listen_env
from gateway.testing.world import PASSWORD, World, populate

ACTOR = Actor("tester", "cli", None)


def _home(tmp: Path) -> World:
    home = make_home(tmp / "home")
    text = (home / "gateway.toml").read_text().replace("[tls]\n", "[tls]\nallow_auth_without_tls = true\n", 1)
    (home / "gateway.toml").write_text(text)
    return populate(home)


@pytest.fixture
def passwords_on(tmp_path: Path) -> Iterator[tuple[World, LiveGateway]]:
    world = _home(tmp_path)
    with live_gateway(world.home, env={**listen_env(), "GATEWAY__AUTH__MAX_DELAY_SECONDS": "0"}) as live:
        yield world, live


@pytest.fixture
def passwords_off(tmp_path: Path) -> Iterator[tuple[World, LiveGateway]]:
    world = _home(tmp_path)
    with live_gateway(world.home, env={**listen_env(), "GATEWAY__AUTH__PASSWORD_LOGIN": "false"}) as live:
        yield world, live


def _plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def _imap_login(live: LiveGateway, user: str, password: str) -> tuple[str, bytes]:
    client = imaplib.IMAP4("127.0.0.1", live.port("imap"), timeout=30)
    try:
        return "OK", client.login(user, password)[1][0]
    except imaplib.IMAP4.error as exc:
        return "NO", str(exc).encode()
    finally:
        client.shutdown()


def _smtp_auth(live: LiveGateway, user: str, password: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", live.port("submission"), timeout=30) as smtp:
        smtp.ehlo("client.test")
        assert smtp.has_extn("auth")
        return smtp.docmd("AUTH", f"PLAIN {_plain(user, password)}")


def _refused(live: LiveGateway) -> int:
    with live.services.db.read() as s:
        return int(s.execute(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action.like("%.login"), AuditEntry.details.like('%"auth.password_refused"%'))).scalar_one())


def test_an_account_refused_passwords_answers_as_a_wrong_password(passwords_on: tuple[World, LiveGateway]) -> None:
    world, live = passwords_on
    client = imaplib.IMAP4("127.0.0.1", live.port("imap"), timeout=30)
    assert "AUTH=PLAIN" in client.capabilities and "LOGINDISABLED" not in client.capabilities
    client.shutdown()
    assert _imap_login(live, world.pro, PASSWORD)[0] == "OK"
    assert _smtp_auth(live, world.pro, PASSWORD)[0] == 235
    wrong_imap = _imap_login(live, world.pro, "not the password")
    wrong_smtp = _smtp_auth(live, world.pro, "not the password")
    with live.services.db.write() as session:
        pros.set_password_login(session, ACTOR, world.pro, False, now=datetime.now(UTC))
    assert _imap_login(live, world.pro, PASSWORD) == wrong_imap  # NO [AUTHENTICATIONFAILED], same text
    assert wrong_imap[1] == b"b'[AUTHENTICATIONFAILED] Authentication failed'"  # imaplib quotes it
    assert _smtp_auth(live, world.pro, PASSWORD) == wrong_smtp  # 535 5.7.8, same text
    assert wrong_smtp[0] == 535
    with smtplib.SMTP("127.0.0.1", live.port("submission"), timeout=30) as smtp:  # AUTH LOGIN too
        smtp.ehlo("client.test")
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            smtp.login(world.pro, PASSWORD)  # smtplib tries each mechanism offered
        assert failed.value.smtp_code == 535
    client = imaplib.IMAP4("127.0.0.1", live.port("imap"), timeout=30)
    typ, _ = client._simple_command("AUTHENTICATE", "PLAIN", _plain(world.pro, PASSWORD))  # SASL-IR
    client.shutdown()
    assert typ == "NO"
    assert _refused(live) == 5  # each one checked, and audited with its reason
    with live.services.db.write() as session:
        pros.set_password_login(session, ACTOR, world.pro, True, now=datetime.now(UTC))
    assert _imap_login(live, world.pro, PASSWORD)[0] == "OK"


def test_a_deployment_without_passwords_offers_and_takes_none(passwords_off: tuple[World, LiveGateway]) -> None:
    world, live = passwords_off
    client = imaplib.IMAP4("127.0.0.1", live.port("imap"), timeout=30)
    try:
        caps = client.capabilities
        assert "LOGINDISABLED" in caps and not [c for c in caps if c.startswith("AUTH=")]
        typ, data = client._simple_command("LOGIN", world.pro, client._quote(PASSWORD))
        assert typ == "NO" and data[0] == b"[CANNOT] Passwords are not accepted here: use AUTHENTICATE"
        typ, data = client._simple_command("AUTHENTICATE", "PLAIN", _plain(world.pro, PASSWORD))
        assert typ == "NO" and b"Unsupported authentication mechanism" in data[0]
        assert client.state == "NONAUTH"
    finally:
        client.shutdown()
    with smtplib.SMTP("127.0.0.1", live.port("submission"), timeout=30) as smtp:
        code, _ = smtp.ehlo("client.test")
        assert code == 250 and not smtp.has_extn("auth")
        code, message = smtp.docmd("AUTH", f"PLAIN {_plain(world.pro, PASSWORD)}")
        assert code == 504, message
        code, _ = smtp.docmd("AUTH", "LOGIN")
        assert code == 504
    with live.services.db.read() as s:  # refused before any password was checked
        assert s.execute(select(func.count()).select_from(AuditEntry)
                         .where(AuditEntry.action.like("%.login"))).scalar_one() == 0
