"""An account suspended while its sessions are open, on a live gateway with real clients
(Python's imaplib and smtplib, a raw IMAP socket for IDLE), on SQLite and PostgreSQL: the
suspension is the admin's own operation (``gateway.operations.pros.set_status``, what the admin
API, the admin pages and ``gateway pro disable`` call). IMAP: the next command is answered
``* BYE`` and the connection closes, within ``ACCESS_CHECK_S`` (5 s; on PostgreSQL at once:
the suspension's announcement reaches every node through LISTEN); an IDLE session ends within
that bound with no command. SMTP submission: the next MAIL FROM gets ``421 4.7.0`` and the
connection closes. Each end is audited without content."""

from __future__ import annotations

import imaplib
import json
import smtplib
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.app.listeners import start_changes, start_imap, start_imaps, start_submission
from gateway.imap_adapter.backend import ACCESS_CHECK_S
from gateway.operations import pros as ops_pros
from gateway.operations.common import Actor
from gateway.store.models import AuditEntry
from gateway.testing.live import live_gateway, make_home
from gateway.testing.smtpclient import submission_client
from gateway.testing.world import populate
from tests.imap_server.kit import PASSWORD, ImapEnv, wire_tls

ACTOR = Actor("admin", "api", "192.0.2.50")
BYE = b"* BYE Account disabled by the administrator; closing connection\r\n"
SMTP_421 = (421, b"4.7.0 account disabled by the administrator, closing connection")
BOUND = ACCESS_CHECK_S + 1.5  # the check's bound, and a margin for a loaded machine
AT_ONCE = 1.5  # PostgreSQL: the suspension's announcement wakes the sessions


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImapEnv]:
    """The IMAP listeners and submission, with the change listener (LISTEN on PostgreSQL) as
    ``gateway serve`` runs it."""
    home: Path = make_home(tmp_path_factory.mktemp("suspended") / "home")
    world = populate(home)
    with live_gateway(home, factories=[start_changes, start_imap, start_imaps, start_submission]) as live:
        yield ImapEnv(world, live)


def _bound(env: ImapEnv) -> float:
    return BOUND if env.live.services.db.is_sqlite else AT_ONCE


def _suspend(env: ImapEnv, address: str) -> None:
    svc = env.live.services
    with svc.db.write() as session:
        ops_pros.set_status(session, ACTOR, address, "disabled", now=datetime.now(UTC))


def _audited(env: ImapEnv, action: str, address: str) -> list[dict[str, str]]:
    with env.live.services.db.read() as session:
        rows = session.execute(select(AuditEntry).where(AuditEntry.action == action,
                                                        AuditEntry.actor == f"pro:{address}")).scalars().all()
        return [json.loads(r.details) for r in rows]


def test_imap_next_command_after_suspension_is_bye(env: ImapEnv, filled: str) -> None:
    client = env.imaps(filled)
    other = env.imaps(env.new_account())
    try:
        client.select("INBOX")
        assert client.fetch("1", "(FLAGS)")[0] == "OK"
        _suspend(env, filled)
        started = time.monotonic()
        with pytest.raises(imaplib.IMAP4.abort, match="Account disabled by the administrator"):
            while time.monotonic() - started < BOUND:
                client.fetch("1", "(FLAGS)")
                time.sleep(0.2)
        assert time.monotonic() - started < _bound(env)
        assert client.sock.recv(1) == b""  # closed by the server
        assert other.noop()[0] == "OK"  # another account's session goes on
        assert _audited(env, "imap.session_end", filled) == [{"reason": "account.disabled"}]
        with pytest.raises(imaplib.IMAP4.error):  # and no new login
            env.imaps(filled)
    finally:
        other.logout()
        client.shutdown()


def test_imap_append_after_suspension_stores_nothing(env: ImapEnv, account: str) -> None:
    client = env.imaps(account)
    try:
        _suspend(env, account)
        time.sleep(_bound(env))
        with pytest.raises(imaplib.IMAP4.abort, match="Account disabled"):
            client.append("INBOX", None, None, b"From: a@clinic.test\r\nSubject: s\r\n\r\nbody\r\n")
    finally:
        client.shutdown()
    with env.live.services.db.read() as session:
        from gateway.accounts.pros import pro_by_address
        from gateway.store.models import Message

        pro = pro_by_address(session, account)
        assert pro is not None
        assert session.execute(select(Message.id).where(Message.mailbox_id == pro.mailbox_id)).first() is None


def test_idle_session_ends_within_the_bound(env: ImapEnv, account: str) -> None:
    wire = wire_tls(env, account)
    try:
        wire.ok("SELECT INBOX")
        wire.send(b"i IDLE\r\n")
        assert wire.response() == b"+ idling\r\n"
        _suspend(env, account)
        started = time.monotonic()
        wire.sock.settimeout(BOUND + 1)
        assert wire.response() == BYE
        assert time.monotonic() - started < _bound(env)
        with pytest.raises((ConnectionError, socket.timeout, OSError)):
            wire.response()  # closed: nothing more
    finally:
        wire.close()


def test_smtp_submission_next_mail_from_is_421(env: ImapEnv, account: str) -> None:
    client = submission_client(env.live, account, PASSWORD)
    try:
        assert client.noop()[0] == 250
        _suspend(env, account)
        assert client.mail(account) == SMTP_421
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    finally:
        client.close()
    assert _audited(env, "smtp.session_end", account) == [{"reason": "account.disabled"}]
    with pytest.raises(smtplib.SMTPAuthenticationError):
        submission_client(env.live, account, PASSWORD)
