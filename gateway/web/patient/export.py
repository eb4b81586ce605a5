""""Export my data": a zip of every message as an .eml file plus ``index.json`` (folder,
date, subject, correspondent, flags, conversation). Built in memory, off the event loop."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from sqlalchemy.orm import Session

from gateway.store.keys import KeyService
from gateway.store.messages import open_message
from gateway.store.models import Patient
from gateway.web.patient import mailbox, mailview


def build(session: Session, keys: KeyService, patient: Patient, *, address: str) -> bytes:
    assert patient.mailbox_id is not None
    index: list[dict[str, Any]] = []
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for n, (message, folder) in enumerate(reversed(mailbox.rows(session, patient.mailbox_id,
                                                                    ("INBOX", "Sent", "Trash"))), start=1):
            raw = open_message(session, keys, message)
            summary = mailview.summary(mailview.parse(raw), fallback_date=message.internal_date)
            name = f"{folder}/{n:05d}.eml"
            archive.writestr(name, raw)
            index.append({
                "file": name, "folder": folder, "received": message.internal_date.isoformat(),
                "date": summary.date.isoformat() if summary.date else None, "subject": summary.subject,
                "from": summary.sender_address, "from_name": summary.sender_name, "message_id": summary.message_id,
                "flags": message.flags.split(), "conversation": message.conversation_id, "size": message.size,
            })
        meta = {"address": address, "state": patient.state,
                "opened_at": patient.opened_at.isoformat() if patient.opened_at else None,
                "messages": index}
        archive.writestr("index.json", json.dumps(meta, ensure_ascii=False, indent=2))
    return buffer.getvalue()
