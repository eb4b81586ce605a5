""""Mon espace": notification address and switch, password change, new TOTP application,
access history, export, closing the space and asking for deletion (SPEC §5, §9)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import IO, Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway.accounts import web_sessions as sessions
from gateway.accounts.patients import by_key, personal_email, set_state
from gateway.accounts.pros import hash_password, verify_password
from gateway.delivery.documents import document_policy
from gateway.store import audit
from gateway.store.models import Patient
from gateway.web.patient import export, history, security, totp
from gateway.web.patient.anon import failed, field, reserve, succeeded
from gateway.web.patient.guard import page
from gateway.web.patient.passwords import strength_problem
from gateway.web.patient.state import Ctx, PatientWeb, redirect
from routing.ins import mask_ins

EMAIL = re.compile(r"^[^@\s<>\"(),;:]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$")
WRONG = "Mot de passe ou code de vérification incorrect."


def routes(web: PatientWeb) -> list[BaseRoute]:
    def load(ctx: Ctx) -> dict[str, Any]:
        with web.db.read() as s:
            patient = by_key(s, *ctx.patient_key)
            assert patient is not None
            return {"email": personal_email(s, web.keys, patient) or "", "notify": patient.notifications_enabled,
                    "address": f"{ctx.ins}@{web.settings.domains.patient_domain}"}

    async def show(request: Request, ctx: Ctx, status: int = 200, **extra: Any) -> Response:
        data = await web.run(load, ctx)
        notice = {"ok": "Vos réglages sont enregistrés.", "mdp": "Votre mot de passe est changé.",
                  "totp": "Votre nouvelle application de double authentification est enregistrée."}
        return web.render(request, "myspace.html", ctx=ctx, status=status,
                          notice=notice.get(request.query_params.get("fait", "")), **data, **extra)

    def credentials_ok(ctx: Ctx, password: str, code: str | None) -> bool:
        with web.db.read() as s:
            patient = by_key(s, *ctx.patient_key)
            if patient is None or not verify_password(patient.password_hash, password):
                return False
            if code is None:
                return True
            if patient.totp_sealed is None or patient.mailbox_id is None:
                return False
            secret = web.keys.for_mailbox(s, patient.mailbox_id).open("totp", "patient", patient.totp_sealed)
            return totp.verify(secret.decode(), code)  # inside a session: the login's code may be reused

    async def checked(request: Request, ctx: Ctx, with_code: bool) -> bool:
        form = await request.form()
        attempt = await reserve(web, "myspace", ctx.ins, ctx.ip)
        if attempt is None:
            return False
        code = field(form, "code", 20) if with_code else None
        ok = await web.run(credentials_ok, ctx, field(form, "current_password", 300), code)
        if ok:
            await succeeded(web, attempt)
        else:
            await failed(web, attempt)
        return ok

    def update(ctx: Ctx, action: str, change: Any) -> None:
        with web.db.write() as s:
            patient = by_key(s, *ctx.patient_key)
            assert patient is not None
            change(s, patient)
            audit.record(s, actor=ctx.actor, action=action, subject_ref=f"patient:{ctx.patient_id}", peer=ctx.ip,
                         keys=web.keys)

    async def notifications(request: Request, ctx: Ctx) -> Response:
        form = await request.form()
        address, enabled = field(form, "email", 320).strip(), form.get("notify") == "oui"
        if address and not EMAIL.match(address):
            return await show(request, ctx, 400, error="Cette adresse électronique n'est pas valide.")

        def change(s: Any, patient: Patient) -> None:
            assert patient.mailbox_id is not None
            mk = web.keys.for_mailbox(s, patient.mailbox_id)
            patient.email_sealed = mk.seal("email", "patient", address.encode()) if address else None
            patient.notifications_enabled = enabled and bool(address)

        await web.run(update, ctx, "patient.settings", change)
        return redirect("/mon-espace?fait=ok")

    async def password(request: Request, ctx: Ctx) -> Response:
        form = await request.form()
        new, again = field(form, "password", 300), field(form, "confirmation", 300)
        if not await checked(request, ctx, False):
            return await show(request, ctx, 400, error="Mot de passe actuel incorrect.")
        problem = strength_problem(new, ins=ctx.ins) or (
            "Les deux mots de passe saisis ne sont pas identiques." if new != again else None)
        if problem:
            return await show(request, ctx, 400, error=problem)
        hashed = await web.run(hash_password, new)

        def change(s: Any, patient: Patient) -> None:
            patient.password_hash = hashed
            sessions.destroy_all(s, patient.id, keep_key=ctx.session_key)  # other devices are logged out

        await web.run(update, ctx, "patient.password_changed", change)
        return redirect("/mon-espace?fait=mdp")

    def pending(ctx: Ctx, secret: str | None) -> str | None:
        """Store (``secret`` given) or read the TOTP secret being enrolled in this session."""
        with web.db.write() as s:
            row = sessions.by_key(s, ctx.session_key)
            assert row is not None
            mk = web.keys.for_mailbox(s, ctx.mailbox_id)
            if secret is not None:
                row.pending_sealed = mk.seal("pending", f"web:{row.id}", json.dumps({"totp": secret}).encode())
                return secret
            if row.pending_sealed is None:
                return None
            value: str | None = json.loads(mk.open("pending", f"web:{row.id}", row.pending_sealed)).get("totp")
            return value

    async def totp_start(request: Request, ctx: Ctx) -> Response:
        if not await checked(request, ctx, True):
            return await show(request, ctx, 400, error=WRONG)
        await web.run(pending, ctx, totp.new_secret())
        return redirect("/mon-espace/double-authentification")

    async def totp_page(request: Request, ctx: Ctx, error: str | None = None, status: int = 200) -> Response:
        secret = await web.run(pending, ctx, None)
        if secret is None:
            return redirect("/mon-espace")
        uri = totp.provisioning_uri(secret, mask_ins(ctx.ins))
        return web.render(request, "enrol_totp.html", ctx=ctx, status=status, error=error, qr=totp.qr_data_uri(uri),
                          secret=totp.spaced(secret), action="/mon-espace/double-authentification/confirmer")

    async def totp_confirm(request: Request, ctx: Ctx) -> Response:
        form = await request.form()
        secret = await web.run(pending, ctx, None)
        if secret is None:
            return redirect("/mon-espace")
        if not totp.verify(secret, field(form, "code", 20)):
            return await totp_page(request, ctx, "Code incorrect. Saisissez le code affiché par la nouvelle "
                                   "application.", 400)

        def change(s: Any, patient: Patient) -> None:
            assert patient.mailbox_id is not None
            patient.totp_sealed = web.keys.for_mailbox(s, patient.mailbox_id).seal("totp", "patient", secret.encode())
            row = sessions.by_key(s, ctx.session_key)
            if row is not None:
                row.pending_sealed = None

        await web.run(update, ctx, "patient.totp_reset", change)
        web.replay.forget(ctx.patient_key)
        return redirect("/mon-espace?fait=totp")

    async def access_history(request: Request, ctx: Ctx) -> Response:
        before_text = request.query_params.get("avant", "")
        before = int(before_text) if before_text.isdigit() and len(before_text) < 19 else None

        def read() -> tuple[list[history.HistoryEntry], int | None, datetime | None]:
            with web.db.read() as s:
                page = history.entries(s, web.keys, ctx.patient_id, mailbox_id=ctx.mailbox_id, before=before)
                return (*page, history.archived_until(s))

        found, more, archived = await web.run(read)
        return web.render(request, "history.html", ctx=ctx, rows=found, more=more, archived_until=archived)

    async def export_data(request: Request, ctx: Ctx) -> Response:
        def build() -> tuple[IO[bytes], int]:
            with web.db.write() as s:
                patient = by_key(s, *ctx.patient_key)
                assert patient is not None
                data = export.build(s, web.keys, patient,
                                    address=f"{ctx.ins}@{web.settings.domains.patient_domain}",
                                    limits=document_policy(web.settings.health_documents).limits)
                size = export.size_of(data)
                audit.record(s, actor=ctx.actor, action="patient.export", subject_ref=f"patient:{ctx.patient_id}",
                             peer=ctx.ip, details={"bytes": size}, keys=web.keys)
                return data, size

        data, size = await web.run(build)
        return StreamingResponse(export.chunks(data), media_type="application/zip", headers={
            "Content-Disposition": 'attachment; filename="mes-messages.zip"', "Cache-Control": "no-store",
            "Content-Length": str(size)})

    def ending(action: str) -> Any:
        async def endpoint(request: Request, ctx: Ctx) -> Response:
            form = await request.form()
            if form.get("confirm") != "oui":
                return await show(request, ctx, 400, error="Cochez la case de confirmation.")
            if not await checked(request, ctx, False):
                return await show(request, ctx, 400, error="Mot de passe incorrect.")

            def change(s: Any, patient: Patient) -> None:
                now = web.now()
                if action == "patient.deletion_requested":
                    patient.deletion_requested_at = now
                if patient.state == "open":
                    set_state(patient, "closed", now)  # SPEC §5: no more mail, data kept archived
                    patient.purge_after = now + timedelta(days=web.settings.patients.archive_retention_days)
                sessions.destroy_all(s, patient.id)

            await web.run(update, ctx, action, change)
            response = web.render(request, "done.html", title="Espace fermé" if action == "patient.close" else
                                  "Demande de suppression enregistrée",
                                  text="Votre espace est fermé : vous ne recevrez plus de messages. "
                                  + ("Vos données sont conservées chiffrées, puis détruites au terme de la durée "
                                     "légale de conservation." if action == "patient.close" else
                                     "Vos données seront détruites dans un délai de trois mois au plus."))
            security.clear_cookie(request, response, security.session_cookie_name(request))
            return response

        return endpoint

    return [
        Route("/mon-espace", page(web, "myspace")(show), methods=["GET"]),
        Route("/mon-espace/notifications", page(web, "myspace.notifications")(notifications), methods=["POST"]),
        Route("/mon-espace/mot-de-passe", page(web, "myspace.password")(password), methods=["POST"]),
        Route("/mon-espace/double-authentification", page(web, "myspace.totp")(totp_start), methods=["POST"]),
        Route("/mon-espace/double-authentification", page(web, "myspace.totp")(totp_page), methods=["GET"]),
        Route("/mon-espace/double-authentification/confirmer", page(web, "myspace.totp")(totp_confirm),
              methods=["POST"]),
        Route("/mon-espace/historique", page(web, "history")(access_history), methods=["GET"]),
        Route("/mon-espace/export", page(web, "export")(export_data), methods=["POST"]),
        Route("/mon-espace/fermer", page(web, "myspace.close")(ending("patient.close")), methods=["POST"]),
        Route("/mon-espace/suppression", page(web, "myspace.deletion")(ending("patient.deletion_requested")),
              methods=["POST"]),
    ]
