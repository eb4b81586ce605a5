""""Export my data": a zip of every message as an .eml file plus ``index.json`` (folder,
date, subject, correspondent, flags, conversation) and, for the health documents a message
carries, each document and its card under ``documents/`` (:mod:`.export_docs`). Built off the event loop into a spooled
temporary file (memory up to 16 MB, then disk) and streamed."""

from __future__ import annotations

import json
import tempfile
import zipfile
from collections.abc import Iterator
from typing import IO, Any

from sqlalchemy.orm import Session

from gateway.mailstore import inbox
from gateway.store.keys import KeyService
from gateway.store.models import Patient
from gateway.web.patient import export_docs, mailbox
from healthdocs.safezip import DEFAULT_LIMITS, ZipLimits

SPOOL_BYTES = 16 * 1024 * 1024
CHUNK = 256 * 1024


def build(session: Session, keys: KeyService, patient: Patient, *, address: str,
          limits: ZipLimits = DEFAULT_LIMITS) -> IO[bytes]:
    """The archive, positioned at its start; the caller closes it (see :func:`chunks`)."""
    assert patient.mailbox_id is not None
    index: list[dict[str, Any]] = []
    buffer: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    try:
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            every = inbox.rows(session, patient.mailbox_id, ("INBOX", "Sent", "Trash"), limit=None)
            listed, _ = inbox.summarised(session, keys, patient.mailbox_id, every)  # older rows: kept unstored
            for n, (row, stored) in enumerate(reversed([(x.row, x.summary) for x in listed]), start=1):
                raw = inbox.open_row(session, keys, patient.mailbox_id, row)
                summary = mailbox.shown(stored.shown, fallback_date=row.internal_date)
                name = f"{row.folder}/{n:05d}.eml"
                archive.writestr(name, raw)
                docs = export_docs.documents(raw, stored.health, limits, prefix=f"{n:05d}", subject=summary.subject)
                for doc_name, data in docs.files:
                    archive.writestr(doc_name, data)
                index.append({
                    "file": name, "folder": row.folder, "received": row.internal_date.isoformat(),
                    "date": summary.date.isoformat() if summary.date else None, "subject": summary.subject,
                    "from": summary.sender_address, "from_name": summary.sender_name, "message_id": summary.message_id,
                    "flags": list(row.flags), "conversation": row.conversation_id, "size": row.size,
                    **({"documents": docs.index} if docs.index else {}),
                })
            meta = {"address": address, "state": patient.state,
                    "opened_at": patient.opened_at.isoformat() if patient.opened_at else None,
                    "messages": index}
            archive.writestr("index.json", json.dumps(meta, ensure_ascii=False, indent=2))
    except BaseException:
        buffer.close()
        raise
    buffer.seek(0)
    return buffer


def size_of(buffer: IO[bytes]) -> int:
    end = buffer.seek(0, 2)
    buffer.seek(0)
    return end


def chunks(buffer: IO[bytes]) -> Iterator[bytes]:
    """Read the archive in chunks (Starlette runs a sync iterator in its thread pool), then close it."""
    try:
        while block := buffer.read(CHUNK):
            yield block
    finally:
        buffer.close()
