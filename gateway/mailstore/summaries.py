"""ENVELOPE / BODYSTRUCTURE summaries as JSON, sealed in ``Message.summary_sealed``
(purpose ``"summary"``), so header listings never decrypt whole bodies (issue 4 §3).

The JSON holds header text (subjects, addresses): it is only ever stored sealed.
"""

from __future__ import annotations

import json
from typing import Any

from imap.backend import MessageSummary
from imap.message import mime
from imap.proto.structure import BodyStructure, Disposition, Envelope, EnvelopeAddress

VERSION = 1


def compute(raw: bytes) -> MessageSummary:
    root = mime.parse(raw)
    return MessageSummary(mime.envelope(root), mime.bodystructure(root))


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


def encode(summary: MessageSummary) -> bytes:
    doc = {"v": VERSION, "envelope": _env(summary.envelope), "body": _bs(summary.bodystructure)}
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


def decode(data: bytes) -> MessageSummary | None:
    """None when the cached form is from another version (it is then recomputed)."""
    doc = json.loads(data)
    if doc.get("v") != VERSION:
        return None
    return MessageSummary(_to_env(doc["envelope"]), _to_bs(doc["body"]))
