"""Changing mail: reply in a conversation (SPEC §4, decided by ``send_reply``), mark
unread, move to the trash, restore, delete for good."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.delivery.pipeline import MailboxFull
from gateway.delivery.replies import ReplyRefused, send_reply
from gateway.mailstore import inbox
from gateway.mailstore.inbox import InboxRow
from gateway.web.patient import mailbox
from gateway.web.patient.anon import field
from gateway.web.patient.guard import FORM_OVERHEAD, page
from gateway.web.patient.state import Ctx, PatientWeb, redirect
from gateway.web.patient.uploads import UploadLimits, UploadRefused, read_attachments

MAX_REPLY_CHARS = 20_000
REFUSALS = {
    "rcpt.conversation_ended": "Le professionnel a clos cette conversation : vous ne pouvez plus y répondre.",
}
DEFAULT_REFUSAL = ("Vous ne pouvez pas répondre dans cette conversation. Seul un professionnel de santé peut "
                   "ouvrir une conversation avec vous.")


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() and len(value) < 19 else None


def routes(web: PatientWeb) -> list[BaseRoute]:
    limits = UploadLimits(web.web.max_attachment_bytes, web.web.max_total_attachment_bytes, web.web.max_attachments)
    upload_limit = web.web.max_total_attachment_bytes + FORM_OVERHEAD

    def subject_of(ctx: Ctx, cid: int) -> str | None:
        return mailbox.reply_subject(web.db, web.keys, ctx.mailbox_id, cid)

    async def reply(request: Request, ctx: Ctx) -> Response:
        cid = _int(request.path_params["cid"])
        subject = await web.run(subject_of, ctx, cid) if cid is not None else None
        if subject is None or cid is None:
            return web.not_found(request, ctx)
        form = await request.form(max_files=web.web.max_attachments, max_fields=50)
        text = field(form, "text", MAX_REPLY_CHARS + 1).strip()
        back = f"/conversations/{cid}"
        if not text:
            return web.problem(request, 400, "Message vide", "Écrivez votre réponse avant de l'envoyer.", ctx=ctx,
                               back=back)
        if len(text) > MAX_REPLY_CHARS:
            return web.problem(request, 400, "Message trop long",
                               f"Votre réponse dépasse {MAX_REPLY_CHARS} caractères.", ctx=ctx, back=back)
        files = [f for f in form.getlist("attachments") if isinstance(f, UploadFile)]
        try:
            attachments = await read_attachments(files, limits)
        except UploadRefused as exc:
            return web.problem(request, 400, "Pièce jointe refusée", str(exc), ctx=ctx, back=back)
        rt = web.mail
        try:
            await web.run(lambda: send_reply(rt.directory, rt.pipeline, web.keys, mailbox_id=ctx.mailbox_id,
                                             patient_id=ctx.patient_id, conversation_id=cid, subject=subject,
                                             text=text, attachments=attachments, peer=ctx.ip))
        except MailboxFull:  # the professional's mailbox is at its quota: nothing sent, try later
            return web.problem(request, 503, "Boîte du destinataire pleine",
                               "La boîte de votre correspondant est pleine pour le moment. Votre réponse n'a pas "
                               "été envoyée : réessayez plus tard.", ctx=ctx, back=back)
        except ReplyRefused as exc:
            reason = exc.verdict.reason if exc.verdict is not None else ""
            return web.problem(request, 403, "Réponse impossible", REFUSALS.get(reason, DEFAULT_REFUSAL), ctx=ctx,
                               back=back)
        return redirect(f"{back}?envoye=1")

    Op = Callable[[Session, Ctx, InboxRow], str]

    def change(ctx: Ctx, mid: int, op: Op) -> str | None:
        with web.db.write() as s:
            row = inbox.owned(s, ctx.mailbox_id, mid)
            return None if row is None else op(s, ctx, row)

    def action(name: str, op: Op) -> Route:
        async def endpoint(request: Request, ctx: Ctx) -> Response:
            mid = _int(request.path_params["mid"])
            target = await web.run(change, ctx, mid, op) if mid is not None else None
            if target is None:
                return web.not_found(request, ctx)
            return redirect(target)

        return Route(f"/messages/{{mid}}/{name}", page(web, f"message.{name}")(endpoint), methods=["POST"])

    def moving(source: str | None, to: str, then: str) -> Op:
        def op(s: Session, ctx: Ctx, row: InboxRow) -> str:
            if (source is None or row.folder == source) and row.folder != to:
                inbox.move(s, web.keys, ctx.mailbox_id, row, to)
            return then

        return op

    def unread(s: Session, ctx: Ctx, row: InboxRow) -> str:
        inbox.remove_flag(s, ctx.mailbox_id, row, "\\Seen")
        return "/"

    def delete(s: Session, ctx: Ctx, row: InboxRow) -> str:
        if row.folder != "Trash":  # only from the trash: two deliberate steps
            return f"/messages/{row.id}"
        inbox.delete(s, ctx.mailbox_id, row)
        return "/corbeille"

    return [
        Route("/conversations/{cid}/repondre", page(web, "reply", max_body=upload_limit)(reply), methods=["POST"]),
        action("corbeille", moving(None, "Trash", "/")),
        action("restaurer", moving("Trash", "INBOX", "/corbeille")),
        action("non-lu", unread),
        action("supprimer", delete),
    ]
