"""Reading a stored message for display, pure: headers, text or sanitised HTML, attachments.

HTML is cleaned with nh3 (ammonia): scripts, styles, event handlers and forms are dropped;
images survive only as inline ``data:image/...`` (no remote fetch, no tracking pixel);
links get ``rel="noopener noreferrer"``. The page's CSP blocks anything that would slip by.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage, Message
from email.utils import parsedate_to_datetime

import nh3

MAX_TEXT = 2_000_000
_ALLOWED_TAGS = set(nh3.ALLOWED_TAGS) | {"img", "span", "div", "font"}
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"}, "img": {"src", "alt", "width", "height"}, "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"}, "abbr": {"title"}, "ol": {"start"},
}
_SCHEMES = {"http", "https", "mailto", "tel", "data"}
NO_SUBJECT = "(sans objet)"
NO_AUTHOR = "(expéditeur inconnu)"


@dataclass(frozen=True)
class Heading:
    subject: str
    sender_name: str
    sender_address: str
    date: datetime | None
    message_id: str | None


@dataclass(frozen=True)
class AttachmentInfo:
    """One attachment as the message view lists it (its bytes are read on download)."""

    index: int
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class View:
    summary: Heading
    to: str
    text: str | None
    html: str | None  # already sanitised
    attachments: tuple[AttachmentInfo, ...]
    wants_receipt: bool


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _text(value: str) -> str:
    """Raw 8-bit header bytes come out of the parser as surrogate escapes: read them as UTF-8
    (RFC 6532, an SMTPUTF8 message's headers), anything else as U+FFFD, never a lone surrogate."""
    if value.isascii() or not any("\udc80" <= c <= "\udcff" for c in value):
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
        return "" if value is None else _text(str(value).strip())
    except (ValueError, TypeError, IndexError, LookupError):
        return ""


def summary(msg: EmailMessage, *, fallback_date: datetime | None = None) -> Heading:
    name, address = "", ""
    try:
        field = msg.get("From")
        addresses: tuple[HeaderAddress, ...] = getattr(field, "addresses", ()) if field is not None else ()
        if addresses:
            name, address = _text(addresses[0].display_name), _text(addresses[0].addr_spec)
    except (ValueError, TypeError, IndexError, LookupError):
        pass
    date: datetime | None = fallback_date
    try:
        raw_date = _header(msg, "Date")
        if raw_date:
            parsed = parsedate_to_datetime(raw_date)
            date = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, TypeError, IndexError):
        pass
    return Heading(_header(msg, "Subject") or NO_SUBJECT, name or address or NO_AUTHOR,
                   address, date, _header(msg, "Message-ID") or None)


def _is_attachment(part: Message) -> bool:
    if part.is_multipart():
        return False
    disposition = (part.get_content_disposition() or "").lower()
    return disposition == "attachment" or (disposition != "inline" and bool(part.get_filename()))


def _payload(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _text_of(part: Message) -> str:
    charset = part.get_content_charset() or "utf-8"
    try:
        return _payload(part).decode(charset, "replace")[:MAX_TEXT]
    except LookupError:
        return _payload(part).decode("utf-8", "replace")[:MAX_TEXT]


def attachments(msg: EmailMessage) -> list[tuple[AttachmentInfo, Message]]:
    found: list[tuple[AttachmentInfo, Message]] = []
    for part in msg.walk():
        if _is_attachment(part):
            name = part.get_filename() or f"piece-jointe-{len(found) + 1}"
            found.append((AttachmentInfo(len(found), name, part.get_content_type(), len(_payload(part))), part))
    return found


def _body_parts(msg: EmailMessage) -> tuple[str | None, str | None]:
    text: str | None = None
    html: str | None = None
    for part in msg.walk():
        if part.is_multipart() or _is_attachment(part):
            continue
        kind = part.get_content_type()
        if kind == "text/plain" and text is None:
            text = _text_of(part)
        elif kind == "text/html" and html is None:
            html = _text_of(part)
    return text, html


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    lowered = value.strip().lower()
    if tag == "img" and attribute == "src":
        return value if lowered.startswith("data:image/") else None  # no remote images
    if attribute == "href" and lowered.startswith("data:"):
        return None
    return value


def sanitise_html(html: str) -> str:
    return nh3.clean(html, tags=_ALLOWED_TAGS, attributes=_ALLOWED_ATTRIBUTES, attribute_filter=_keep_attribute,
                     url_schemes=_SCHEMES, link_rel="noopener noreferrer", strip_comments=True)


def plain_text(msg: EmailMessage) -> str:
    """Everything searchable: the subject, sender, text and HTML text (tags removed)."""
    text, html = _body_parts(msg)
    s = summary(msg)
    words = [s.subject, s.sender_name, s.sender_address, text or ""]
    if html:
        words.append(nh3.clean(html, tags=set(), clean_content_tags={"script", "style"}))
    words.extend(p.filename for p, _ in attachments(msg))
    return "\n".join(words)


def view(raw: bytes, *, fallback_date: datetime | None = None) -> View:
    msg = parse(raw)
    text, html = _body_parts(msg)
    return View(
        summary=summary(msg, fallback_date=fallback_date), to=_header(msg, "To"), text=text,
        html=sanitise_html(html) if html is not None else None,
        attachments=tuple(p for p, _ in attachments(msg)),
        wants_receipt=bool(_header(msg, "Disposition-Notification-To")),
    )


def attachment(raw: bytes, index: int) -> tuple[AttachmentInfo, bytes] | None:
    for part, node in attachments(parse(raw)):
        if part.index == index:
            return part, _payload(node)
    return None
