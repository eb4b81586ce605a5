"""Health documents in the patient inbox (issue 21): one document opened (a PDF inline, or a
level-3 CDA's narrative as sanitised HTML) and "Mes documents", every document received.

Listings come from the summaries sealed at delivery (:mod:`gateway.web.patient.healthview`),
never from the archives. Opening a document reads the message (only if it is in this
patient's mailbox: anything else is the same 404 as a missing one), decodes the part the
summary names and reads that one entry with the delivery's limits
(:mod:`gateway.mailstore.health_open`). Each request is audited by
:func:`gateway.web.patient.guard.page` like an attachment download (``web.document.view``,
``web.document.pdf``, ``web.documents``), without the document's title.

The PDF is served ``inline`` with ``application/pdf``, ``nosniff`` and a sandboxing CSP (no
script, no plugin, no frame of ours around it); a download link (``?telecharger``) gives
the same bytes as an attachment, for browsers that will not show a sandboxed PDF (Safari).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.delivery.documents import document_policy
from gateway.mailstore import health_open
from gateway.mailstore import inbox as store
from gateway.mailstore.inbox import InboxRow
from gateway.store.db import Database
from gateway.store.keys import KeyService
from gateway.web.patient import healthview, mailbox, narrative
from gateway.web.patient.guard import page
from gateway.web.patient.state import Ctx, PatientWeb
from healthdocs.model import Document, Found

PDF_CSP = "sandbox; default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
LISTED_FOLDERS = ("INBOX",)  # documents received; a patient's own sent mail is not checked for identity


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 10 else None


def found_of(db: Database, keys: KeyService, mailbox_id: int, row: InboxRow) -> Found | None:
    """The documents sealed in ``row``'s summary (a summary computed now for an old row is stored)."""
    with db.read() as session:
        [listed], to_store = store.summarised(session, keys, mailbox_id, [row])
    if to_store:
        with db.write() as session:
            store.keep(session, mailbox_id, to_store)
    return listed.summary.health


@dataclass(frozen=True)
class Received:
    """One document in "Mes documents", with its message."""

    mid: int
    doc: healthview.Offered
    subject: str
    sender: str
    received: datetime

    @property
    def sort_key(self) -> datetime:
        return self.doc.when.at if self.doc.when is not None else self.received


def received(db: Database, keys: KeyService, mailbox_id: int) -> list[Received]:
    """Every document of the mailbox's received messages, newest first (document date, else the
    message's), from the sealed summaries only."""
    with db.read() as session:
        listed, to_store = store.summarised(session, keys, mailbox_id,
                                            store.rows(session, mailbox_id, LISTED_FOLDERS))
    if to_store:
        with db.write() as session:
            store.keep(session, mailbox_id, to_store)
    out: list[Received] = []
    for x in listed:
        heading = mailbox.shown(x.summary.shown, fallback_date=x.row.internal_date)
        for s, _ in healthview.documents(x.summary.health):
            out.append(Received(x.row.id, s, heading.subject, heading.sender_name, x.row.internal_date))
    return sorted(out, key=lambda r: r.sort_key, reverse=True)


def types(found: list[Received]) -> list[tuple[str, str, int]]:
    """(key, label, count) of the types present, by label."""
    counted: dict[str, tuple[str, int]] = {}
    for r in found:
        label, count = counted.get(r.doc.type_key, (r.doc.type_label, 0))
        counted[r.doc.type_key] = (label, count + 1)
    return sorted(((k, label, n) for k, (label, n) in counted.items()), key=lambda t: t[1].casefold())


def routes(web: PatientWeb) -> list[BaseRoute]:
    limits = document_policy(web.settings.health_documents).limits

    def open_document(ctx: Ctx, mid: int, n: int) -> tuple[InboxRow, healthview.Offered, Document, bytes] | None:
        with web.db.read() as s:
            row = store.owned(s, ctx.mailbox_id, mid)
        if row is None:
            return None
        picked = healthview.pick(found_of(web.db, web.keys, ctx.mailbox_id, row), n)
        if picked is None:
            return None
        shown, doc = picked
        with web.db.read() as s:
            raw = store.open_row(s, web.keys, ctx.mailbox_id, row)
        body = health_open.cda_bytes(raw, shown.archive_part, doc.entry, limits)
        return None if body is None else (row, shown, doc, body)

    def document_data(ctx: Ctx, mid: int, n: int) -> dict[str, Any] | None:
        found = open_document(ctx, mid, n)
        if found is None:
            return None
        row, shown, _, body = found
        sections = health_open.sections(body) if shown.readable else None
        rendered = [(title, narrative.render(text)) for title, text in sections or []]
        return {"doc": shown, "mid": mid, "sections": rendered, "folder": row.folder,
                "pdf": shown.has_pdf and health_open.pdf(body) is not None}

    async def document(request: Request, ctx: Ctx) -> Response:
        mid, n = _int(request.path_params["mid"]), _int(request.path_params["n"])
        data = await web.run(document_data, ctx, mid, n) if mid is not None and n is not None else None
        if data is None:
            return web.not_found(request, ctx)
        return web.render(request, "document.html", ctx=ctx, **data)

    def pdf_data(ctx: Ctx, mid: int, n: int) -> tuple[healthview.Offered, bytes] | None:
        found = open_document(ctx, mid, n)
        if found is None or not found[1].has_pdf:
            return None
        data = health_open.pdf(found[3])
        return None if data is None else (found[1], data)

    async def pdf(request: Request, ctx: Ctx) -> Response:
        mid, n = _int(request.path_params["mid"]), _int(request.path_params["n"])
        found = await web.run(pdf_data, ctx, mid, n) if mid is not None and n is not None else None
        if found is None:
            return web.not_found(request, ctx)
        shown, data = found
        name = healthview.filename(shown, "pdf")
        ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name)
        how = "attachment" if "telecharger" in request.query_params else "inline"
        return Response(data, media_type="application/pdf", headers={
            "Content-Disposition": f"{how}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}",
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "X-Download-Options": "noopen",
            "Content-Security-Policy": PDF_CSP, "Cross-Origin-Resource-Policy": "same-origin"})

    async def listing(request: Request, ctx: Ctx) -> Response:
        every = await web.run(received, web.db, web.keys, ctx.mailbox_id)
        wanted = request.query_params.get("type", "")[:64]
        present = types(every)
        if wanted and wanted not in {k for k, _, _ in present}:
            wanted = ""
        shown_docs = [r for r in every if not wanted or r.doc.type_key == wanted]
        return web.render(request, "documents.html", ctx=ctx, documents=shown_docs, types=present, wanted=wanted,
                          total=len(every))

    return [
        Route("/mes-documents", page(web, "documents")(listing), methods=["GET"]),
        Route("/messages/{mid}/documents/{n}", page(web, "document.view")(document), methods=["GET"]),
        Route("/messages/{mid}/documents/{n}/pdf", page(web, "document.pdf")(pdf), methods=["GET"]),
    ]
