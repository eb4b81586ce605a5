"""Header facts, read from the message's one parse (RFC 5322), tolerant of broken MIME.

:func:`parse_headers` runs the mail store's one MIME parse
(:func:`gateway.mailstore.parsing.parse`) and keeps it in :attr:`HeaderInfo.parsed`, so the
pipeline makes the stored summary and the document count from the same parse. Anything
that cannot be decoded is treated as absent rather than raising: a malformed message is
stored as received (SPEC: broken MIME never crashes a session).
"""

from __future__ import annotations

import email.utils
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message

from gateway.mailstore.parsing import Parsed, parse
from routing.address import Address, InvalidAddress, parse_address

# Received "with" of an authenticated session (RFC 3848; RFC 6531 §4.3: UTF8SMTP* with SMTPUTF8).
SUBMISSION_PROTOCOLS = frozenset({"ESMTPSA", "ESMTPA", "UTF8SMTPSA", "UTF8SMTPA"})


def _all(msg: Message, name: str) -> list[str]:
    """Every ``name`` field as received, raw UTF-8 read as UTF-8 (RFC 6532, SMTPUTF8): the
    parse keeps 8-bit octets as surrogates, which ``email`` would turn into U+FFFD."""
    wanted = name.lower()
    return [str(v).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            for k, v in msg.raw_items() if k.lower() == wanted]


def _text(msg: Message, name: str) -> str | None:
    values = _all(msg, name)
    if not values:
        return None
    try:
        return str(make_header(decode_header(values[0]))).strip()
    except (ValueError, LookupError, UnicodeError, TypeError):
        return values[0].strip()


def _addresses(msg: Message, name: str) -> tuple[Address, ...]:
    values = _all(msg, name)
    found: list[Address] = []
    try:
        pairs = email.utils.getaddresses([str(v) for v in values])
    except (ValueError, TypeError, IndexError):
        return ()
    for _, addr in pairs:
        if not addr:
            continue
        try:
            found.append(parse_address(addr))
        except InvalidAddress:
            return ()  # one unusable author makes the whole field unusable
    return tuple(found)


def _ids(msg: Message, *names: str) -> tuple[str, ...]:
    out: list[str] = []
    for name in names:
        for value in msg.get_all(name) or []:
            for token in str(value).replace(",", " ").split():
                if token.startswith("<") and token.endswith(">") and len(token) > 2:
                    out.append(token)
    return tuple(out)


@dataclass(frozen=True)
class HeaderInfo:
    subject: str | None
    from_addresses: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    x_mss_mes: str | None
    disposition_notification_to: tuple[Address, ...]
    has_date: bool = False
    parsed: Parsed | None = field(default=None, compare=False, repr=False)  # the message's one parse

    @property
    def thread_ids(self) -> tuple[str, ...]:
        return self.in_reply_to + self.references


def parse_headers(raw: bytes) -> HeaderInfo:
    """The message's one parse, and the header facts routing and threading need from it."""
    parsed = parse(raw)
    msg = parsed.headers
    ids = _ids(msg, "Message-ID")
    return HeaderInfo(
        subject=_text(msg, "Subject"),
        from_addresses=_addresses(msg, "From"),
        reply_to=_addresses(msg, "Reply-To"),
        message_id=ids[0] if ids else None,
        in_reply_to=_ids(msg, "In-Reply-To"),
        references=_ids(msg, "References"),
        x_mss_mes=_text(msg, "X-MSS-MES"),
        disposition_notification_to=_addresses(msg, "Disposition-Notification-To"),
        has_date=msg.get("Date") is not None,
        parsed=parsed,
    )


def new_message_id(hostname: str) -> str:
    return f"<{secrets.token_hex(12)}@{hostname}>"


def trace_headers(raw: bytes, info: HeaderInfo, *, hostname: str, helo: str | None, peer: str | None,
                  protocol: str, queue_id: str, now: datetime | None = None) -> tuple[bytes, str]:
    """The message with its trace headers in front (:func:`trace_prefix`), and its Message-ID."""
    prefix, message_id = trace_prefix(info, hostname=hostname, helo=helo, peer=peer, protocol=protocol,
                                      queue_id=queue_id, now=now)
    return prefix + raw, message_id


def trace_prefix(info: HeaderInfo, *, hostname: str, helo: str | None, peer: str | None,
                 protocol: str, queue_id: str, now: datetime | None = None) -> tuple[bytes, str]:
    """The lines to put in front of the message: ``Received:`` (RFC 5321 §4.4), and
    ``Message-ID:`` if missing (RFC 5322 §3.6.4); with the message's Message-ID.

    Submission (an authenticated session: ``ESMTPSA``/``ESMTPA``) also adds ``Date:`` when the
    client left it out (RFC 6409 §8.3); relayed mail keeps its header as received (RFC 5321 §6.4).
    The Received line names no recipient: a patient's INS must not travel to other recipients.
    The pipeline seals the prefix and the message as received as one plaintext without joining
    them (a 20 MiB message is not copied for a line in front).
    """
    when = email.utils.format_datetime(now or datetime.now(UTC))
    if protocol == "local":
        source = "from localhost (the gateway itself)"
    elif protocol == "HTTP":
        source = f"from web inbox ([{_clean(peer or 'unknown')}])"
    else:
        source = f"from {_clean(helo or 'unknown')} ([{_clean(peer or 'unknown')}])"
    received = f"Received: {source}\r\n\tby {hostname} with {protocol} id {queue_id};\r\n\t{when}\r\n".encode()
    message_id = info.message_id
    extra = b""
    if message_id is None:
        message_id = new_message_id(hostname)
        extra = f"Message-ID: {message_id}\r\n".encode()
    if protocol in SUBMISSION_PROTOCOLS and not info.has_date:
        extra += f"Date: {when}\r\n".encode()
    return received + extra, message_id


def _clean(value: str) -> str:
    return "".join(c for c in value if c.isprintable() and c not in "()[]\\\r\n")[:255]
