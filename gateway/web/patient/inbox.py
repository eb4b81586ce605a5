"""Reading mail: the inbox by conversation, a conversation, a message, its attachments,
the trash and search. Every lookup is scoped to the logged-in patient's mailbox."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.mailstore import inbox as store
from gateway.web.patient import healthview, mailbox, mailview, receipts
from gateway.web.patient.guard import page
from gateway.web.patient.state import Ctx, PatientWeb
from gateway.web.patient.uploads import ACCEPT

# Attachments are always downloaded; only these types keep their name, the rest is opaque.
SAFE_DOWNLOAD_TYPES = {"application/pdf", "image/jpeg", "image/png", "image/tiff", "image/gif", "text/plain",
                       "application/rtf"}


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 19 else None


def routes(web: PatientWeb) -> list[BaseRoute]:
    def inbox_data(ctx: Ctx) -> list[mailbox.Thread]:
        found = mailbox.items(web.db, web.keys, ctx.mailbox_id, ("INBOX", "Sent"))
        with web.db.read() as s:
            return mailbox.threads(s, ctx.mailbox_id, found)

    async def inbox(request: Request, ctx: Ctx) -> Response:
        threads = await web.run(inbox_data, ctx)
        welcome = "bienvenue" in request.query_params
        recovered = "recuperation" in request.query_params
        return web.render(request, "inbox.html", ctx=ctx, threads=threads, welcome=welcome, recovered=recovered,
                          unread=sum(t.unread for t in threads))

    def thread_data(ctx: Ctx, cid: int) -> dict[str, Any] | None:
        with web.db.read() as s:
            conv = mailbox.conversation(s, ctx.mailbox_id, cid)
        if conv is None:
            return None
        found = [i for i in mailbox.items(web.db, web.keys, ctx.mailbox_id, ("INBOX", "Sent"))
                 if i.conversation_id == cid]
        return {"items": list(reversed(found)), "ended": conv.ended, "cid": cid}

    async def conversation(request: Request, ctx: Ctx) -> Response:
        cid = _int(request.path_params["cid"])
        data = await web.run(thread_data, ctx, cid) if cid is not None else None
        if data is None:
            return web.not_found(request, ctx)
        subject = data["items"][0].summary.subject if data["items"] else "Conversation"
        return web.render(request, "conversation.html", ctx=ctx, subject=subject, accept=ACCEPT,
                          sent="envoye" in request.query_params, **data)

    def message_data(ctx: Ctx, mid: int) -> dict[str, Any] | None:
        with web.db.write() as s:
            row = store.owned(s, ctx.mailbox_id, mid)
            if row is None:
                return None
            folder = row.folder
            view = mailview.view(store.open_row(s, web.keys, ctx.mailbox_id, row), fallback_date=row.internal_date)
            [listed], to_store = store.summarised(s, web.keys, ctx.mailbox_id, [row])  # documents: sealed list
            store.keep(s, ctx.mailbox_id, to_store)
            health = listed.summary.health
            if folder != "Trash":
                store.add_flag(s, ctx.mailbox_id, row, "\\Seen")
            conv = store.conversation(s, ctx.mailbox_id, row.conversation_id) if row.conversation_id else None
            return {"view": view, "folder": folder, "mid": mid,
                    "documents": [d for d, _ in healthview.documents(health)], "damaged": healthview.damaged(health),
                    "folder_label": mailbox.FOLDER_LABELS.get(folder, folder),
                    "cid": conv.id if conv else None,
                    "can_reply": conv is not None and not conv.ended and folder != "Trash"}

    async def message(request: Request, ctx: Ctx) -> Response:
        mid = _int(request.path_params["mid"])
        data = await web.run(message_data, ctx, mid) if mid is not None else None
        if data is None or mid is None:
            return web.not_found(request, ctx)
        receipt = False
        if data["view"].wants_receipt and data["folder"] == "INBOX":
            receipt = await web.run(receipts.send_once, web, ctx, mid)
        return web.render(request, "message.html", ctx=ctx, accept=ACCEPT, receipt_sent=receipt, **data)

    def attachment_data(ctx: Ctx, mid: int, index: int) -> tuple[mailview.AttachmentInfo, bytes] | None:
        with web.db.read() as s:
            row = store.owned(s, ctx.mailbox_id, mid)
            if row is None:
                return None
            return mailview.attachment(store.open_row(s, web.keys, ctx.mailbox_id, row), index)

    async def attachment(request: Request, ctx: Ctx) -> Response:
        mid, index = _int(request.path_params["mid"]), _int(request.path_params["index"])
        found = await web.run(attachment_data, ctx, mid, index) if mid is not None and index is not None else None
        if found is None:
            return web.not_found(request, ctx)
        part, data = found
        content_type = part.content_type if part.content_type in SAFE_DOWNLOAD_TYPES else "application/octet-stream"
        ascii_name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in part.filename)
        disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(part.filename)}"
        return Response(data, media_type=content_type, headers={
            "Content-Disposition": disposition, "Cache-Control": "no-store", "X-Download-Options": "noopen",
            "Content-Security-Policy": "default-src 'none'; sandbox"})

    def trash_data(ctx: Ctx) -> list[mailbox.Item]:
        return mailbox.items(web.db, web.keys, ctx.mailbox_id, ("Trash",))

    async def trash(request: Request, ctx: Ctx) -> Response:
        return web.render(request, "trash.html", ctx=ctx, items=await web.run(trash_data, ctx))

    def search_data(ctx: Ctx, query: str) -> list[mailbox.Item]:
        with web.db.read() as s:
            return mailbox.search(s, web.keys, ctx.mailbox_id, query)

    async def search(request: Request, ctx: Ctx) -> Response:
        query = request.query_params.get("q", "")[:200].strip()
        results = await web.run(search_data, ctx, query) if query else []
        return web.render(request, "search.html", ctx=ctx, query=query, results=results,
                          labels=mailbox.FOLDER_LABELS)

    return [
        Route("/", page(web, "inbox")(inbox), methods=["GET"]),
        Route("/conversations/{cid}", page(web, "conversation.view")(conversation), methods=["GET"]),
        Route("/messages/{mid}", page(web, "message.view")(message), methods=["GET"]),
        Route("/messages/{mid}/pieces/{index}", page(web, "attachment.download")(attachment), methods=["GET"]),
        Route("/corbeille", page(web, "trash")(trash), methods=["GET"]),
        Route("/recherche", page(web, "search")(search), methods=["GET"]),
    ]
