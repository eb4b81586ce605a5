"""A message's summary, made from its one parse at delivery and sealed with it
(``Message.summary_sealed``, :mod:`gateway.mailstore.sealed`): the IMAP ENVELOPE and
BODYSTRUCTURE (issue 4 §3) and what the web inbox shows (:class:`Shown`: subject, author,
date, attachments), so that listings, the attachment count and the reply subject never
decrypt a body (issue 16).

Versions: 1 held the IMAP part only; 2 adds :class:`Shown`; 3 adds the IMAP PREVIEW text
(RFC 8970, :mod:`imap.message.preview`, from the same parse); 4 adds ``"health"``, the
documents found in the message's IHE XDM archives (:class:`healthdocs.model.Found`, JSON by
:func:`healthdocs.model.to_json`; examined once at delivery, :mod:`gateway.mailstore.xdm`,
so the inbox never re-opens an archive to list it). A version 3 summary is read as it is with
``health=None`` ("not examined": the message came before version 4; whoever shows documents
examines it then). A version 2 summary is still read as it is, without a preview (IMAP makes
one from the message only when a client asks for ``PREVIEW`` without ``LAZY``;
:mod:`imap.handlers.fetch`). A row without a summary, or with version 1, gets one computed
from its bytes on first read and stored (IMAP FETCH, the web list), documents included.
The JSON holds header text (subjects, addresses) and patient identifiers: it is only ever
stored sealed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.mailstore import parsing, xdm
from gateway.mailstore.parsing import Parsed
from gateway.mailstore.sealed import SealedRow, open_message, open_summary, seal_summary
from gateway.store.keys import KeyService
from gateway.store.models import Message
from healthdocs import model as health_model
from imap.backend import MessageSummary
from imap.message import mime
from imap.message.preview import preview
from imap.proto.structure import BodyStructure, Disposition, Envelope, EnvelopeAddress

VERSION = 4
READABLE = (2, 3, 4)  # versions decoded as they are (2: no preview; 2, 3: health not examined)


@dataclass(frozen=True)
class Shown:
    """What the patient web inbox shows of a message without opening it."""

    subject: str | None  # decoded (RFC 2047)
    from_name: str
    from_address: str
    date: str | None  # the Date: header, ISO 8601
    message_id: str | None
    attachments: tuple[str, ...]  # names, as the message view offers them
    documents: int  # the adoption figures' count (gateway.mailstore.adoption)
    wants_receipt: bool  # Disposition-Notification-To (RFC 8098)


@dataclass(frozen=True)
class Summary:
    imap: MessageSummary
    shown: Shown
    health: health_model.Found | None = None  # None: not examined (a summary before version 4)


def summarise(parsed: Parsed, *, message_id: str | None = None,
              health: health_model.Found | None = None, examine: bool = True) -> Summary:
    """The summary of a parsed message; ``message_id``: the one the pipeline added in front
    (``trace_prefix``), when the message had none; ``health``: the documents the pipeline
    already found (:func:`gateway.mailstore.xdm.found_in`), else examined here unless
    ``examine`` is false (``[health_documents] check = false``: left ``None``)."""
    root, msg = parsed.root, parsed.headers
    envelope = mime.envelope(root)
    if message_id is not None and envelope.message_id is None:
        envelope = replace(envelope, message_id=message_id)
    name, address = parsing.first_author(msg)
    shown = Shown(
        subject=parsing.header_text(msg, "Subject"), from_name=name, from_address=address,
        date=parsing.date_iso(msg), message_id=envelope.message_id,
        attachments=parsing.attachment_names(parsed), documents=parsing.documents(parsed),
        wants_receipt=msg.get("Disposition-Notification-To") is not None,
    )  # fmt: skip
    if health is None and examine:
        health = xdm.found_in(parsed)
    return Summary(MessageSummary(envelope, mime.bodystructure(root), preview(root)), shown, health)


def compute(raw: bytes) -> Summary:
    """Parse ``raw`` (:func:`gateway.mailstore.parsing.parse`) and summarise it."""
    return summarise(parsing.parse(raw))


def _addrs(values: tuple[EnvelopeAddress, ...]) -> list[list[str | None]]:
    return [[a.name, a.adl, a.mailbox, a.host] for a in values]


def _env(env: Envelope) -> dict[str, Any]:
    return {
        "date": env.date, "subject": env.subject, "from": _addrs(env.from_), "sender": _addrs(env.sender),
        "reply_to": _addrs(env.reply_to), "to": _addrs(env.to), "cc": _addrs(env.cc), "bcc": _addrs(env.bcc),
        "in_reply_to": env.in_reply_to, "message_id": env.message_id,
    }  # fmt: skip


def _pairs(values: tuple[tuple[str, str], ...]) -> list[list[str]]:
    return [[k, v] for k, v in values]


def _bs(bs: BodyStructure) -> dict[str, Any]:
    return {
        "type": bs.type, "subtype": bs.subtype, "params": _pairs(bs.params), "id": bs.id,
        "description": bs.description, "encoding": bs.encoding, "size": bs.size, "lines": bs.lines,
        "envelope": _env(bs.envelope) if bs.envelope else None, "body": _bs(bs.body) if bs.body else None,
        "parts": [_bs(p) for p in bs.parts], "md5": bs.md5,
        "disposition": [bs.disposition.value, _pairs(bs.disposition.params)] if bs.disposition else None,
        "language": list(bs.language) if bs.language is not None else None, "location": bs.location,
    }  # fmt: skip


def _shown(shown: Shown) -> dict[str, Any]:
    return {
        "subject": shown.subject, "from_name": shown.from_name, "from_address": shown.from_address,
        "date": shown.date, "message_id": shown.message_id, "attachments": list(shown.attachments),
        "documents": shown.documents, "receipt": shown.wants_receipt,
    }  # fmt: skip


def encode(summary: Summary) -> bytes:
    imap = summary.imap
    doc = {"v": VERSION, "envelope": _env(imap.envelope), "body": _bs(imap.bodystructure),
           "shown": _shown(summary.shown), "preview": imap.preview,
           "health": health_model.to_json(summary.health) if summary.health is not None else None}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _to_addrs(values: list[list[str | None]]) -> tuple[EnvelopeAddress, ...]:
    return tuple(EnvelopeAddress(*v) for v in values)


def _to_env(d: dict[str, Any]) -> Envelope:
    return Envelope(
        date=d["date"], subject=d["subject"], from_=_to_addrs(d["from"]), sender=_to_addrs(d["sender"]),
        reply_to=_to_addrs(d["reply_to"]), to=_to_addrs(d["to"]), cc=_to_addrs(d["cc"]),
        bcc=_to_addrs(d["bcc"]), in_reply_to=d["in_reply_to"], message_id=d["message_id"],
    )  # fmt: skip


def _to_pairs(values: list[list[str]]) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in values)


def _to_bs(d: dict[str, Any]) -> BodyStructure:
    disp = d["disposition"]
    return BodyStructure(
        type=d["type"], subtype=d["subtype"], params=_to_pairs(d["params"]), id=d["id"],
        description=d["description"], encoding=d["encoding"], size=d["size"], lines=d["lines"],
        envelope=_to_env(d["envelope"]) if d["envelope"] else None,
        body=_to_bs(d["body"]) if d["body"] else None, parts=tuple(_to_bs(p) for p in d["parts"]),
        md5=d["md5"], disposition=Disposition(disp[0], _to_pairs(disp[1])) if disp else None,
        language=tuple(d["language"]) if d["language"] is not None else None, location=d["location"],
    )  # fmt: skip


def _to_shown(d: dict[str, Any]) -> Shown:
    return Shown(d["subject"], d["from_name"], d["from_address"], d["date"], d["message_id"],
                 tuple(d["attachments"]), int(d["documents"]), bool(d["receipt"]))


def decode(data: bytes) -> Summary | None:
    """None when the stored form is from a version not in :data:`READABLE` (it is then recomputed)."""
    doc = json.loads(data)
    if doc.get("v") not in READABLE:
        return None
    preview_text = doc.get("preview") if doc["v"] >= 3 else None
    health = doc.get("health") if doc["v"] >= 4 else None
    return Summary(MessageSummary(_to_env(doc["envelope"]), _to_bs(doc["body"]), preview_text),
                   _to_shown(doc["shown"]), health_model.from_json(health) if health is not None else None)


IN_CHUNK = 500  # bound on IN (...) lists (SQLite's variable limit)


def read(session: Session, keys: KeyService, mailbox_id: int, rows: Mapping[int, SealedRow]
         ) -> tuple[dict[int, Summary], dict[int, bytes]]:
    """The summaries of ``rows`` (by message id, their sealed summary loaded), opened for
    ``mailbox_id``; and, for rows stored without one (or with an older version), the summary
    computed from the message's bytes, sealed, by message id, for :func:`store`."""
    found: dict[int, Summary] = {}
    missing: list[int] = []
    for message_id, row in rows.items():
        encoded = open_summary(session, keys, mailbox_id, row)
        summary = decode(encoded) if encoded is not None else None
        if summary is None:
            missing.append(message_id)
        else:
            found[message_id] = summary
    to_store: dict[int, bytes] = {}
    for i in range(0, len(missing), IN_CHUNK):
        for message_id, sealed in session.connection().execute(
                select(Message.id, Message.sealed).where(Message.mailbox_id == mailbox_id,
                                                         Message.id.in_(missing[i:i + IN_CHUNK]))):
            row = replace(rows[message_id], sealed=sealed)
            summary = compute(open_message(session, keys, mailbox_id, row))
            to_store[message_id] = seal_summary(session, keys, mailbox_id, row, encode(summary))
            found[message_id] = summary
    return found, to_store


def store(session: Session, mailbox_id: int, sealed: Mapping[int, bytes]) -> None:
    """Keep computed summaries (sealed by :func:`read` for ``mailbox_id``) with their messages."""
    for message_id, blob in sealed.items():
        session.execute(update(Message).where(Message.mailbox_id == mailbox_id, Message.id == message_id)
                        .values(summary_sealed=blob))
