"""Small helpers around smtplib for transcript-style SMTP tests, and store peeks."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field

from sqlalchemy import select

from gateway.accounts.patients import by_ins
from gateway.mailstore.folders import find_folder
from gateway.mailstore.messages import read_message
from gateway.store.models import Message, ProAccount
from gateway.testing.live import LiveGateway


@dataclass
class Transcript:
    mail: tuple[int, str]
    rcpts: list[tuple[int, str]] = field(default_factory=list)
    data: tuple[int, str] | None = None


def _reply(pair: tuple[int, bytes]) -> tuple[int, str]:
    return pair[0], pair[1].decode("utf-8", "replace")


def transaction(client: smtplib.SMTP, mail_from: str, rcpts: list[str], message: bytes | None,
                mail_options: list[str] | None = None, rcpt_options: list[str] | None = None) -> Transcript:
    """MAIL, every RCPT, then DATA if at least one recipient was accepted; RSET afterwards."""
    t = Transcript(_reply(client.mail(mail_from, mail_options or [])))
    if t.mail[0] == 250:
        for rcpt in rcpts:
            t.rcpts.append(_reply(client.rcpt(rcpt, rcpt_options or [])))
        if message is not None and any(code == 250 for code, _ in t.rcpts):
            try:
                t.data = _reply(client.data(message))
            except smtplib.SMTPDataError as exc:
                error = exc.smtp_error
                t.data = (exc.smtp_code, error.decode("utf-8", "replace") if isinstance(error, bytes) else error)
    client.rset()
    return t


def submission_client(live: LiveGateway, user: str | None, password: str | None, *, tls: bool = True,
                      implicit: bool = False) -> smtplib.SMTP:
    ctx = ssl.create_default_context(cafile=live.ca_file)
    client: smtplib.SMTP
    if implicit:
        client = smtplib.SMTP_SSL("127.0.0.1", live.port("submissions"), context=ctx, timeout=30)
    else:
        client = smtplib.SMTP("127.0.0.1", live.port("submission"), timeout=30)
        if tls:
            client.starttls(context=ctx)
    client.ehlo("client.clinic.test")
    if user and password:
        client.login(user, password)
    return client


def mx_client(live: LiveGateway, context: ssl.SSLContext | None, helo: str = "mx.hopital.example") -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", live.port("mx"), timeout=30)
    client.ehlo(helo)
    if context is not None:
        client.starttls(context=context)
        client.ehlo(helo)
    return client


def mailbox_messages(live: LiveGateway, *, ins: str | None = None, pro: str | None = None,
                     folder: str = "INBOX") -> list[bytes]:
    """Decrypt every message of a patient's or professional's folder, in UID order."""
    svc = live.services
    with svc.db.read() as session:
        if ins is not None:
            patient = by_ins(session, svc.keys, ins)
            assert patient is not None
            mailbox_id = patient.mailbox_id
        else:
            mailbox_id = session.execute(select(ProAccount.mailbox_id).where(ProAccount.address == pro)).scalar_one()
        assert mailbox_id is not None
        found = find_folder(session, mailbox_id, folder)
        assert found is not None
        rows = session.execute(select(Message).where(Message.mailbox_id == mailbox_id, Message.folder_id == found.id)
                               .order_by(Message.uid)).scalars()
        return [read_message(session, svc.keys, mailbox_id, row.id) for row in rows]
