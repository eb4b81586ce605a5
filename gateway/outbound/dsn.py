"""Delivery status notifications (RFC 3464) and when to send them (RFC 3461), pure.

A DSN is ``multipart/report; report-type=delivery-status`` (RFC 6522) with a human part
(French, then English), a ``message/delivery-status`` part, and the original headers
(``text/rfc822-headers``) or the whole original (``message/rfc822``) per RET (RFC 3461 §4.3).
It is sent from the null reverse-path ``<>`` (RFC 3461 §6.2, RFC 5321 §4.5.5) and is never
itself the subject of a DSN.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import charset, message_from_bytes, policy
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, make_msgid
from typing import Literal

from gateway.outbound.values import Envelope, RecipientResult

Action = Literal["failed", "delayed", "delivered", "relayed"]
# RFC 3461 §4.1: which NOTIFY keyword asks for which action's DSN.
_NOTIFY_FOR: dict[str, Literal["SUCCESS", "FAILURE", "DELAY"]] = {
    "failed": "FAILURE", "delayed": "DELAY", "delivered": "SUCCESS", "relayed": "SUCCESS",
}
_UTF8_QP = charset.Charset("utf-8")
_UTF8_QP.body_encoding = charset.QP


def utf8_text(text: str, subtype: str = "plain") -> MIMEBase:
    """A text part in UTF-8, quoted-printable (readable and 7-bit safe), without MIME-Version."""
    part = MIMEBase("text", subtype)
    part.set_payload(text, _UTF8_QP)
    del part["MIME-Version"]  # set_charset adds one; only the top level carries it (RFC 2045 §4)
    return part


def encoded_header(text: str) -> str:
    """RFC 2047 encoded-words for a non-ASCII header value."""
    return text if text.isascii() else Header(text, "utf-8").encode()


@dataclass(frozen=True)
class DsnRecipient:
    """One per-recipient block of RFC 3464 §2.3."""

    final_recipient: str
    action: Action
    status: str  # RFC 3463, e.g. "5.1.1"
    original_recipient: str | None = None  # "rfc822;addr" from ORCPT (RFC 3461 §4.2)
    diagnostic: str | None = None  # "smtp; 550 5.1.1 ..."
    remote_mta: str | None = None  # "dns; mx.example"
    last_attempt: datetime | None = None
    will_retry_until: datetime | None = None  # delayed only (RFC 3464 §2.3.8)


def utf8_addr_xtext(address: str) -> str:
    """RFC 6533 §3 utf-8-addr-xtext: ``\\x{HEX}`` for what is not plain printable ASCII (and for
    "+", "=", "\\"), so a UTF-8 address fits the ASCII ``message/delivery-status`` part."""
    return "".join(c if ("!" <= c <= "~" and c not in "+=\\") else f"\\x{{{ord(c):X}}}" for c in address)


def _address_field(address: str) -> str:
    """Final-/Original-Recipient value: ``rfc822; addr`` or, for a UTF-8 address, ``utf-8; ...``."""
    return f"rfc822; {address}" if address.isascii() else f"utf-8; {utf8_addr_xtext(address)}"


def notices(
    envelope: Envelope, results: Sequence[RecipientResult], action: Action, *, now: datetime,
    status: str | None = None, retry_until: datetime | None = None,
) -> list[DsnRecipient]:
    """The recipients of ``results`` whose NOTIFY asks for a DSN with ``action``.

    Never any for a null reverse-path (a DSN about a DSN, RFC 3461 §6.2); NOTIFY=NEVER
    never; without NOTIFY, failures only (RFC 3461 §4.1). ``status`` overrides (expiry: 4.4.7).
    """
    if not envelope.mail_from:
        return []
    wanted = _NOTIFY_FOR[action]
    return [
        DsnRecipient(
            final_recipient=r.recipient.address, action=action, status=status or r.status,
            original_recipient=r.recipient.orcpt, diagnostic=r.diagnostic, remote_mta=r.remote_mta,
            last_attempt=now, will_retry_until=retry_until if action == "delayed" else None,
        )
        for r in results
        if r.recipient.wants(wanted)
    ]


def _ascii(text: str, limit: int = 900) -> str:
    return " ".join(text.encode("ascii", "replace").decode("ascii").split())[:limit]


def _human(recipients: Sequence[DsnRecipient], retry_until: datetime | None,
           cancelled: bool = False) -> tuple[str, str]:
    """(subject, text) in French then English."""
    actions = {r.action for r in recipients}
    lines = "\n".join(f"  - {r.final_recipient} ({r.status}{'; ' + _ascii(r.diagnostic, 300) if r.diagnostic else ''})"
                      for r in recipients)
    if cancelled:
        subject = "Envoi annulé / Delivery cancelled"
        fr = ("La remise de votre message a été annulée par l'opérateur de la messagerie ; "
              "il ne sera plus réessayé. Destinataires concernés :")
        en = ("Delivery of your message was cancelled by the operator of the mail service; "
              "it will not be retried. Recipients:")
    elif "failed" in actions:
        subject = "Échec de remise / Delivery failure"
        fr = ("Votre message n'a pas pu être remis aux destinataires suivants ; "
              "il ne sera plus réessayé :")
        en = "Your message could not be delivered to the following recipients; it will not be retried:"
    elif "delayed" in actions:
        until = format_datetime(retry_until) if retry_until else "?"
        subject = "Remise retardée / Delivery delayed"
        fr = (f"Votre message n'a pas encore pu être remis. Nous réessayons jusqu'au {until} ; "
              "vous n'avez rien à faire pour l'instant. Destinataires concernés :")
        en = (f"Your message has not been delivered yet. We will keep trying until {until}; "
              "no action is needed now. Recipients:")
    else:
        subject = "Message remis / Delivery report"
        fr = ("Votre message a été remis au serveur de messagerie des destinataires suivants "
              "(qui peut ne pas confirmer la remise finale) :")
        en = "Your message was handed over to the mail server of the following recipients:"
    body = f"{fr}\n\n{lines}\n\n--\n\n{en}\n\n{lines}\n\nCe message est automatique / This is an automatic message.\n"
    return subject, body


def _block(fields: Sequence[tuple[str, str | None]]) -> Message:
    block = Message()
    for name, value in fields:
        if value is not None:
            block[name] = value
    return block


def _status_part(reporting_mta: str, envid: str | None, arrival: datetime | None,
                 recipients: Sequence[DsnRecipient]) -> MIMEBase:
    part = MIMEBase("message", "delivery-status")
    del part["MIME-Version"]
    # RFC 3464 §2.2: per-message fields, then §2.3: one block per recipient.
    blocks = [_block([
        ("Reporting-MTA", f"dns; {reporting_mta}"),
        ("Original-Envelope-Id", _ascii(envid, 100) if envid else None),
        ("Arrival-Date", format_datetime(arrival) if arrival else None),
    ])]
    for r in recipients:
        blocks.append(_block([
            ("Original-Recipient", _ascii(r.original_recipient) if r.original_recipient else None),
            ("Final-Recipient", _address_field(r.final_recipient)),
            ("Action", r.action),
            ("Status", r.status),
            ("Remote-MTA", r.remote_mta),
            ("Diagnostic-Code", _ascii(r.diagnostic) if r.diagnostic else None),
            ("Last-Attempt-Date", format_datetime(r.last_attempt) if r.last_attempt else None),
            ("Will-Retry-Until", format_datetime(r.will_retry_until) if r.will_retry_until else None),
        ]))
    part.set_payload(blocks)  # type: ignore[arg-type]  # a list of header blocks, as email parses it
    return part


def header_block(original: bytes) -> bytes:
    """The header section of a message (up to the first empty line)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = original.find(sep)
        if at >= 0:
            return original[: at + len(sep) // 2]
    return original


def _returned_part(original: bytes, full: bool) -> Message:
    if full:  # RFC 3461 §4.3 RET=FULL
        return MIMEMessage(message_from_bytes(original, policy=policy.compat32))
    text = header_block(original).decode("utf-8", "replace").replace("\r\n", "\n")
    return MIMEText(text, "rfc822-headers", "us-ascii" if text.isascii() else "utf-8")  # RFC 6522 §4


_WIRE = policy.compat32.clone(linesep="\r\n")  # RFC 5322 §2.1: CRLF line endings


def render(message: Message) -> bytes:
    """Serialise with CRLF line endings, 8-bit parts kept as they are."""
    buf = io.BytesIO()
    BytesGenerator(buf, mangle_from_=False, policy=_WIRE).flatten(message)
    return buf.getvalue()


def render_to(message: Message, to: str) -> bytes:
    """:func:`render` with ``To: to``. A UTF-8 address travels raw in the header (RFC 6532 §3.2; the
    message then goes with SMTPUTF8), never as an encoded-word (RFC 2047 §5 allows none in an
    address), which the compat32 generator would write: it is put in front instead."""
    if to.isascii():
        message["To"] = to
        return render(message)
    return f"To: {to}\r\n".encode() + render(message)


def build_dsn(
    *,
    reporting_mta: str,
    to: str,
    recipients: Sequence[DsnRecipient],
    original: bytes,
    now: datetime,
    envid: str | None = None,
    ret: str | None = None,
    arrival: datetime | None = None,
    message_id: str | None = None,
    cancelled: bool = False,
) -> bytes:
    """The DSN to send with ``MAIL FROM:<>`` to ``to`` (the original reverse-path).

    ``cancelled``: the failures are an operator's bounce; the human part says so.
    """
    if not recipients:
        raise ValueError("a DSN reports on at least one recipient")
    retry_until = next((r.will_retry_until for r in recipients if r.will_retry_until), None)
    subject, text = _human(recipients, retry_until, cancelled)
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = f"MAILER-DAEMON@{reporting_mta}"
    report["Subject"] = encoded_header(subject)
    report["Date"] = format_datetime(now)
    report["Message-ID"] = message_id or make_msgid(domain=reporting_mta)
    report["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5
    report.attach(utf8_text(text))
    report.attach(_status_part(reporting_mta, envid, arrival, recipients))
    # RET=FULL returns the whole message for failures only; other DSNs carry the headers.
    full = ret == "FULL" and any(r.action == "failed" for r in recipients)
    returned = _returned_part(original, full)
    del returned["MIME-Version"]
    report.attach(returned)
    return render_to(report, to)
