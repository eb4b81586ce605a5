"""Activation (INS + activation code -> password -> TOTP enrolment) and opposition (SPEC §5).

The code is valid 6 weeks (``patients.activation_code_validity_days``) and used once: it is
erased when activation completes or when the patient opposes. Between the code and the
first verified TOTP code, the password hash and the TOTP secret wait sealed in the
activation session (``web_sessions.pending_sealed``), so nothing is half-enrolled.

Recovery (issue 14): a new code issued for a space already activated (``gateway.operations.recovery``)
goes through the same pages; at the end the new password and TOTP secret replace the old
ones, every web session of the patient ends, the mailbox is untouched, and the access
history shows ``patient.recover``.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.accounts import web_sessions as sessions
from gateway.accounts.patients import by_ins, by_key, check_activation_code, set_state
from gateway.accounts.pros import hash_password
from gateway.store import audit
from gateway.web.patient import security, totp
from gateway.web.patient.anon import anon_form, failed, field, ins_key, reserve, succeeded
from gateway.web.patient.guard import page
from gateway.web.patient.passwords import strength_problem
from gateway.web.patient.state import Ctx, PatientWeb, redirect
from gateway.web.security import client_ip
from routing.ins import mask_ins

BAD_CODE = "Numéro INS ou code d'activation incorrect, ou code expiré."
LOCKED = "Trop de tentatives infructueuses. Réessayez dans quelques minutes."


def routes(web: PatientWeb) -> list[BaseRoute]:
    def expired(request: Request) -> Response:
        return web.problem(request, 403, "Formulaire expiré",
                           "Le formulaire a expiré ou ne vient pas de ce site. Rechargez la page.", back="/activation")

    async def activation_page(request: Request) -> Response:
        return web.render(request, "activation.html")

    def start(ins: str, code: str, ip: str) -> str | None:
        now = web.now()
        with web.db.write() as s:
            patient = by_ins(s, web.keys, ins)
            if patient is None:
                return None
            ok = patient.state in ("provisioned", "open") and check_activation_code(patient, code, now, ins=ins)
            audit.record(s, actor="anonymous" if not ok else f"patient:{patient.id}",
                         action="patient.activation_started" if ok else "patient.activation_failed",
                         subject_ref=f"patient:{patient.id}", peer=ip, now=now, keys=web.keys)
            if not ok:
                return None
            token, _ = sessions.create(s, patient.id, mailbox_id=patient.mailbox_id, stage="activation",
                                       now=now)
            return token

    async def activation_post(request: Request) -> Response:
        form = await anon_form(request)
        if form is None:
            return expired(request)
        ip = client_ip(request)
        ins, key = ins_key(field(form, "ins", 40))
        attempt = await reserve(web, "activation", key, ip)
        if attempt is None:
            return web.render(request, "activation.html", status=429, error=LOCKED)
        token = await web.run(start, ins, field(form, "code", 40), ip) if ins else None
        if token is None:
            await failed(web, attempt)
            return web.render(request, "activation.html", status=401, error=BAD_CODE)
        await succeeded(web, attempt)
        response = redirect("/activation/mot-de-passe")
        security.set_cookie(request, response, security.session_cookie_name(request), token)
        return response

    def recovering(ctx: Ctx) -> bool:
        """A space activated before: the code replaces lost credentials."""
        with web.db.read() as s:
            patient = by_key(s, *ctx.patient_key)
            return patient is not None and patient.activated_at is not None

    async def password_page(request: Request, ctx: Ctx) -> Response:
        return web.render(request, "enrol_password.html", ctx=ctx, recovery=await web.run(recovering, ctx))

    def keep_pending(ctx: Ctx, password: str) -> None:
        with web.db.write() as s:
            row = sessions.by_key(s, ctx.session_key)
            assert row is not None
            mk = web.keys.for_mailbox(s, ctx.mailbox_id)
            pending = {"password_hash": hash_password(password), "totp": totp.new_secret()}
            row.pending_sealed = mk.seal("pending", f"web:{row.id}", json.dumps(pending).encode())

    async def password_post(request: Request, ctx: Ctx) -> Response:
        form = await request.form()
        password, again = field(form, "password", 300), field(form, "confirmation", 300)
        problem = strength_problem(password, ins=ctx.ins)
        if problem is None and password != again:
            problem = "Les deux mots de passe saisis ne sont pas identiques."
        if problem:
            return web.render(request, "enrol_password.html", ctx=ctx, status=400, error=problem,
                              recovery=await web.run(recovering, ctx))
        await web.run(keep_pending, ctx, password)
        return redirect("/activation/double-authentification")

    def pending_of(ctx: Ctx) -> dict[str, str] | None:
        with web.db.read() as s:
            row = sessions.by_key(s, ctx.session_key)
            if row is None or row.pending_sealed is None:
                return None
            mk = web.keys.for_mailbox(s, ctx.mailbox_id)
            data: dict[str, str] = json.loads(mk.open("pending", f"web:{row.id}", row.pending_sealed))
            return data

    async def totp_page(request: Request, ctx: Ctx, error: str | None = None, status: int = 200) -> Response:
        pending = await web.run(pending_of, ctx)
        if pending is None:
            return redirect("/activation/mot-de-passe")
        uri = totp.provisioning_uri(pending["totp"], mask_ins(ctx.ins))
        return web.render(request, "enrol_totp.html", ctx=ctx, status=status, error=error,
                          qr=totp.qr_data_uri(uri), secret=totp.spaced(pending["totp"]),
                          action="/activation/double-authentification", recovery=await web.run(recovering, ctx))

    def finish(ctx: Ctx, pending: dict[str, str], step: int | None) -> tuple[str, bool] | None:
        """Enrol (or, for recovery, replace) the credentials: (session token, recovery), or None when
        this enrolment already ended."""
        now = web.now()
        with web.db.write() as s:
            row = sessions.by_key(s, ctx.session_key, for_update=True)
            patient = by_key(s, *ctx.patient_key)
            if row is None or row.pending_sealed is None or patient is None or patient.mailbox_id is None \
                    or patient.state not in ("provisioned", "open"):
                return None
            mk = web.keys.for_mailbox(s, patient.mailbox_id)
            recovery = patient.activated_at is not None
            patient.password_hash = pending["password_hash"]
            patient.totp_sealed = mk.seal("totp", "patient", pending["totp"].encode())
            if recovery:
                patient.totp_last_step = step  # the code just typed cannot log in again (RFC 6238 §5.2)
            else:
                patient.activated_at = now
            patient.activation_code_hash = None  # single use (SPEC §5)
            if patient.state == "provisioned":
                set_state(patient, "open", now)
            ended = sessions.count_for(s, patient.id, except_key=row.token_hash) if recovery else 0  # a fan-out
            sessions.destroy_all(s, patient.id)
            token, _ = sessions.create(s, patient.id, mailbox_id=patient.mailbox_id, stage="full", now=now)
            audit.record(s, actor=ctx.actor, action="patient.recover" if recovery else "patient.activate",
                         subject_ref=f"patient:{patient.id}", peer=ctx.ip, now=now,
                         details={"sessions_ended": int(ended)} if recovery else None, keys=web.keys)
        return token, recovery

    async def totp_post(request: Request, ctx: Ctx) -> Response:
        form = await request.form()
        pending = await web.run(pending_of, ctx)
        if pending is None:
            return redirect("/activation/mot-de-passe")
        code = field(form, "code", 20)
        if await web.run(recovering, ctx):
            # The old secret's steps say nothing about the new one; the step used is recorded at the end.
            step = totp.matching_step(pending["totp"], code)
            ok = step is not None
        else:
            step, ok = None, await web.run(totp.verify, pending["totp"], code, guard=(web.replay, ctx.patient_key))
        if not ok:
            return await totp_page(request, ctx, "Code incorrect. Saisissez le code à 6 chiffres affiché "
                                   "par votre application, puis validez.", 400)
        done = await web.run(finish, ctx, pending, step)
        if done is None:
            return redirect("/connexion")
        token, recovery = done
        response = redirect("/?recuperation=1" if recovery else "/?bienvenue=1")
        security.set_cookie(request, response, security.session_cookie_name(request), token)
        security.clear_cookie(request, response, security.anon_cookie_name(request))
        return response

    async def opposition_page(request: Request) -> Response:
        return web.render(request, "opposition.html")

    def oppose(ins: str, code: str, ip: str) -> bool:
        now = web.now()
        with web.db.write() as s:
            patient = by_ins(s, web.keys, ins)
            if patient is None:
                return False
            ok = (patient.state == "provisioned" and now < patient.opposition_deadline
                  and check_activation_code(patient, code, now, ins=ins))
            if ok:
                set_state(patient, "opposed", now)
                patient.activation_code_hash = None
                sessions.destroy_all(s, patient.id)
            audit.record(s, actor="anonymous" if not ok else f"patient:{patient.id}",
                         action="patient.oppose" if ok else "patient.oppose_failed",
                         subject_ref=f"patient:{patient.id}", peer=ip, now=now, keys=web.keys)
            return ok

    async def opposition_post(request: Request) -> Response:
        form = await anon_form(request)
        if form is None:
            return expired(request)
        ip = client_ip(request)
        ins, key = ins_key(field(form, "ins", 40))
        if form.get("confirm") != "oui":
            return web.render(request, "opposition.html", status=400,
                              error="Cochez la case pour confirmer votre opposition.")
        attempt = await reserve(web, "activation", key, ip)
        if attempt is None:
            return web.render(request, "opposition.html", status=429, error=LOCKED)
        done = await web.run(oppose, ins, field(form, "code", 40), ip) if ins else False
        if done:
            await succeeded(web, attempt)
        else:
            await failed(web, attempt)
            return web.render(request, "opposition.html", status=401,
                              error=BAD_CODE + " L'opposition n'est possible que pendant le délai indiqué "
                              "dans votre courrier, tant que l'espace n'est pas activé.")
        return web.render(request, "done.html", title="Opposition enregistrée",
                          text="Votre opposition est enregistrée : votre messagerie de santé ne sera pas créée "
                               "et aucun message ne vous sera distribué.")

    return [
        Route("/activation", activation_page, methods=["GET"]),
        Route("/activation", activation_post, methods=["POST"]),
        Route("/activation/mot-de-passe", page(web, "enrol.password", stage="activation")(password_page),
              methods=["GET"]),
        Route("/activation/mot-de-passe", page(web, "enrol.password", stage="activation")(password_post),
              methods=["POST"]),
        Route("/activation/double-authentification",
              page(web, "enrol.totp", stage="activation")(totp_page), methods=["GET"]),
        Route("/activation/double-authentification",
              page(web, "enrol.totp", stage="activation")(totp_post), methods=["POST"]),
        Route("/opposition", opposition_page, methods=["GET"]),
        Route("/opposition", opposition_post, methods=["POST"]),
    ]
