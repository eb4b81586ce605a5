"""Message disposition notifications, read receipts (RFC 8098), pure.

A professional asks with ``Disposition-Notification-To``; when the patient opens the message
the gateway sends the MDN (SPEC §7, the patient cannot suppress it). The MDN is
``multipart/report; report-type=disposition-notification`` (RFC 6522, RFC 8098 §3) with a
human part in French and a ``message/disposition-notification`` part; it is sent with a
null reverse-path (RFC 8098 §2.1, §3) so it never causes a bounce loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.utils import format_datetime, getaddresses, make_msgid

from gateway.outbound.dsn import encoded_header, render_to, utf8_text

DEFAULT_DISPOSITION = "automatic-action/MDN-sent-automatically; displayed"  # RFC 8098 §3.2.6


class NoMdnRequested(ValueError):
    """The message carries no (usable) Disposition-Notification-To."""


def _get(headers: Mapping[str, str] | Message, name: str) -> str | None:
    if isinstance(headers, Message):
        value = headers.get(name)
        return None if value is None else str(value)
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def mdn_addresses(headers: Mapping[str, str] | Message) -> list[str]:
    """The addresses of ``Disposition-Notification-To`` (RFC 8098 §2.1), in order."""
    raw = _get(headers, "Disposition-Notification-To")
    if not raw:
        return []
    return [addr for _name, addr in getaddresses([raw]) if "@" in addr]


def build_mdn(
    original_headers: Mapping[str, str] | Message,
    *,
    reporting_ua: str,
    final_recipient: str,
    now: datetime,
    disposition: str = DEFAULT_DISPOSITION,
    message_id: str | None = None,
) -> bytes:
    """The MDN for a message whose recipient ``final_recipient`` displayed it.

    ``reporting_ua`` is RFC 8098 §3.2.1 ``ua-name [; ua-product]``, e.g. "mail.gateway.test; gateway".
    """
    to = mdn_addresses(original_headers)
    if not to:
        raise NoMdnRequested("no Disposition-Notification-To address")
    original_id = _get(original_headers, "Message-ID")
    original_date = _get(original_headers, "Date")
    host = reporting_ua.split(";", 1)[0].strip() or "localhost"

    report = MIMEMultipart("report", report_type="disposition-notification")
    report["From"] = final_recipient
    report["Subject"] = encoded_header("Accusé de lecture / Read receipt")
    report["Date"] = format_datetime(now)
    report["Message-ID"] = message_id or make_msgid(domain=host)
    if original_id:  # threading with the original (RFC 5322 §3.6.4)
        report["In-Reply-To"] = original_id.strip()
        report["References"] = original_id.strip()
    report["Auto-Submitted"] = "auto-replied"  # RFC 3834 §5, RFC 8098 §2.1

    when = f" du {original_date.strip()}" if original_date else ""
    text = (
        f"Le message{when} que vous avez adressé à {final_recipient} a été affiché par son "
        "destinataire dans sa messagerie de santé.\n\n"
        "Cet accusé de lecture est envoyé automatiquement : il indique que le message a été "
        "ouvert, pas qu'il a été lu en entier ni compris.\n\n"
        "--\n"
        f"The message you sent to {final_recipient} was displayed by its recipient. "
        "This receipt is automatic.\n"
    )
    report.attach(utf8_text(text))

    # RFC 8098 §3.1: the machine-readable part, one block of fields.
    fields = Message()
    fields["Reporting-UA"] = reporting_ua
    original_rcpt = _get(original_headers, "Original-Recipient")
    if original_rcpt:  # RFC 8098 §3.2.3, copied from the header a delivery MTA added
        fields["Original-Recipient"] = original_rcpt.strip()
    fields["Final-Recipient"] = f"rfc822; {final_recipient}"  # RFC 8098 §3.2.4
    if original_id:
        fields["Original-Message-ID"] = original_id.strip()  # RFC 8098 §3.2.5
    fields["Disposition"] = disposition  # RFC 8098 §3.2.6
    part = MIMEBase("message", "disposition-notification")
    del part["MIME-Version"]
    part.set_payload([fields])  # one header block, as email parses it
    report.attach(part)
    return render_to(report, ", ".join(to))
