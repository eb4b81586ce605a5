"""The audit trail for admins: search, export (CSV, JSON Lines), chain verification.

Search filters: actor (exact, or prefix with a trailing ``*``), action (same), subject
(``patient:<id>``, ``domain:<name>``..., or an INS, translated to its patient),
date range. Exports stream in id order by batches and are themselves audited.
Verification walks the trail from its retention anchor (pruned entries: their checkpoint)
and checks retention export files against their checkpoints.

Entries about a patient are stored sealed (issue 20, :mod:`gateway.store.audit_links`): a
search by patient (``patient:<id>`` or an INS, as subject or actor) goes through the keyed
index and finds every entry concerning the patient (as subject or as actor); rows are shown
with their sealed parts opened, or ``[shredded]`` once the patient's keys are destroyed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from gateway.accounts.patients import by_ins
from gateway.operations.common import Actor, integer, iso, text, when
from gateway.store import audit, audit_export, audit_links
from gateway.store.db import Database
from gateway.store.keys import KeyService
from gateway.store.models import AuditEntry
from routing.ins import InvalidINS, normalise_ins

COLUMNS = ("id", "at", "actor", "action", "subject", "peer", "details", "hash")
PAGE_MAX = 500
EXPORT_BATCH = 2000


@dataclass(frozen=True)
class AuditQuery:
    actor: str | None = None
    action: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    limit: int = 100

    @classmethod
    def parse(cls, params: Any) -> AuditQuery:
        return cls(
            actor=text(params.get("actor"), "acteur", max_length=320),
            action=text(params.get("action"), "action", max_length=64),
            subject=text(params.get("subject"), "sujet", max_length=320),
            since=when(params.get("since"), "depuis"), until=when(params.get("until"), "jusqu'au"),
            before_id=integer(params.get("before_id"), "before_id", low=1, high=2**62),
            limit=integer(params.get("limit"), "limit", low=1, high=PAGE_MAX, default=100) or 100,
        )

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in {"actor": self.actor, "action": self.action, "subject": self.subject,
                                  "since": iso(self.since), "until": iso(self.until)}.items() if v}


def _match(column: Any, value: str) -> Any:
    if value.endswith("*"):
        prefix = value[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(prefix + "%", escape="\\")
    return column == value


NO_PATIENT = 0  # an INS without a space: matches nothing


def _patient(session: Session, keys: KeyService, value: str) -> int | None:
    """The patient a filter names (``patient:<id>``, or an INS found through its keyed index), or
    None: not a patient filter."""
    by_id = audit_links.patient_of(value, None)
    if by_id is not None:
        return by_id
    try:
        ins = normalise_ins(value)
    except (InvalidINS, ValueError):
        return None
    patient = by_ins(session, keys, ins)
    return patient.id if patient else NO_PATIENT


def _patients(session: Session, keys: KeyService, q: AuditQuery) -> tuple[int | None, int | None]:
    """The patient the subject filter names, and the one the actor filter names."""
    return (_patient(session, keys, q.subject) if q.subject else None,
            _patient(session, keys, q.actor) if q.actor else None)


def _query(session: Session, keys: KeyService, q: AuditQuery) -> Select[tuple[AuditEntry]]:
    """The console's audit search: a bounded fan-out over the audit partitions (a page of
    ``limit`` rows, or the export's batches; on distribution.py's allow-list), since a search
    by actor, action or time is not by subject (issue 23)."""
    query = select(AuditEntry)
    by_subject, by_actor = _patients(session, keys, q)
    for patient in {p for p in (by_subject, by_actor) if p is not None}:
        query = query.where(audit_links.about_clause(session, keys, patient))
    if q.actor and by_actor is None:
        query = query.where(_match(AuditEntry.actor, q.actor))
    if q.action:
        query = query.where(_match(AuditEntry.action, q.action))
    if q.subject and by_subject is None:
        star = "*" if q.subject.endswith("*") else ""
        wanted = (audit.subject_of(q.subject.removesuffix("*")) or "") + star
        query = query.where(_match(AuditEntry.subject_ref, wanted))  # as stored: its first 64 characters
    if q.since:
        query = query.where(AuditEntry.at >= q.since)
    if q.until:
        query = query.where(AuditEntry.at <= q.until)
    return query


def row(e: AuditEntry, opened: audit_links.Opened) -> dict[str, Any]:
    try:
        details: Any = json.loads(opened.details)
    except ValueError:
        details = opened.details
    return {"id": e.id, "at": iso(e.at), "actor": opened.actor, "action": e.action, "subject": opened.subject_ref,
            "peer": opened.peer, "details": details, "hash": e.hash, "sealed": opened.sealed,
            "shredded": opened.shredded}


def _wanted(opened: audit_links.Opened, by_subject: int | None, by_actor: int | None) -> bool:
    """A row found through a patient's keyed index is kept only if its opened part says so: about
    the patient (subject filter), by the patient (actor filter); a shredded one cannot say."""
    if opened.shredded:
        return True
    if by_subject is not None and not opened.concerns(by_subject):
        return False
    return by_actor is None or opened.actor == f"patient:{by_actor}"


def _rows(session: Session, keys: KeyService, q: AuditQuery, entries: list[AuditEntry]) -> list[dict[str, Any]]:
    """The entries opened; searching by patient, a row whose opened part names another patient (its
    index was tampered with) is left out."""
    by_subject, by_actor = _patients(session, keys, q)
    out = []
    for e, opened in audit_links.open_many(session, keys, entries):
        if _wanted(opened, by_subject, by_actor):
            out.append(row(e, opened))
    return out


def search(session: Session, keys: KeyService, q: AuditQuery) -> list[dict[str, Any]]:
    """Newest first, ``limit`` rows, older than ``before_id`` when paging."""
    query = _query(session, keys, q)
    if q.before_id:
        query = query.where(AuditEntry.id < q.before_id)
    return _rows(session, keys, q, list(session.execute(query.order_by(AuditEntry.id.desc()).limit(q.limit))
                                        .scalars()))


def record_export(db: Database, actor: Actor, q: AuditQuery, fmt: str) -> None:
    with db.write() as session:
        audit.record(session, actor=actor.audit_actor, action="admin.audit.export", peer=actor.peer,
                     details={"format": fmt, "filters": q.as_dict(), "via": actor.via})


def export_rows(db: Database, keys: KeyService, q: AuditQuery) -> Iterator[dict[str, Any]]:
    """Every matching entry in id order, read by batches (constant memory)."""
    last = 0
    while True:
        with db.read() as session:
            query = _query(session, keys, q).where(AuditEntry.id > last).order_by(AuditEntry.id).limit(EXPORT_BATCH)
            entries = list(session.execute(query).scalars())
            batch = _rows(session, keys, q, entries)
        if not entries:
            return
        yield from batch
        last = entries[-1].id


def jsonl(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for r in rows:
        yield (json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n").encode()


def csv_lines(rows: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r["id"], r["at"], r["actor"], r["action"], r["subject"] or "", r["peer"] or "",
                         json.dumps(r["details"], ensure_ascii=False, sort_keys=True), r["hash"]])
        if buffer.tell() > 65536:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def report_dict(report: audit.ChainReport) -> dict[str, Any]:
    return {"ok": report.ok, "entries": report.entries, "first_bad_id": report.first_bad_id,
            "problem": report.problem, "start_id": report.start_id, "checkpoints": report.checkpoints,
            "pruned": report.pruned, "pruned_until": iso(report.pruned_until),
            "prune_pending": report.prune_pending, "bad_checkpoint": report.bad_checkpoint,
            "partition": report.partition, "partitions": report.partitions, "anchors": report.anchors,
            "bad_anchor": report.bad_anchor}


def check_export(session: Session, path: Path) -> dict[str, Any]:
    """An export file of pruned entries against its checkpoint (``audit_export``)."""
    try:
        summary = audit_export.read_file(path)
        ck = audit_export.match_checkpoint(session, summary)
    except audit_export.ExportError as exc:
        return {"file": str(path), "ok": False, "problem": str(exc)}
    return {"file": str(path), "ok": True, "entries": summary.entries, "first_id": summary.first_id,
            "last_id": summary.last_id, "checkpoint": ck.id, "pruned_at": iso(ck.pruned_at),
            "sha256": summary.sha256}


def verify(db: Database, actor: Actor, exports: Sequence[Path] = ()) -> dict[str, Any]:
    """The chain (from its retention anchor), and each export file given against its checkpoint."""
    with db.read() as session:
        report = audit.verify(session)
        files = [check_export(session, path) for path in exports]
    result = report_dict(report)
    details: dict[str, Any] = {"ok": report.ok, "entries": report.entries, "via": actor.via}
    if exports:
        result["exports"] = files
        details["exports"] = {"checked": len(files), "ok": sum(1 for f in files if f["ok"])}
    with db.write() as session:
        audit.record(session, actor=actor.audit_actor, action="admin.audit.verify", peer=actor.peer,
                     details=details)
    return result
