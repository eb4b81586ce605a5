"""Login with INS + password + TOTP code, and logout. One generic failure message whatever
was wrong (no account enumeration); delays then a temporary lockout after repeated failures."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.accounts import web_sessions as sessions
from gateway.accounts.patients import by_ins
from gateway.accounts.pros import verify_password
from gateway.store import audit
from gateway.web.patient import security, totp
from gateway.web.patient.anon import anon_form, failed, field, ins_key, reserve, succeeded
from gateway.web.patient.guard import page
from gateway.web.patient.state import Ctx, PatientWeb, redirect
from gateway.web.security import client_ip

GENERIC_FAILURE = "Identifiant, mot de passe ou code de vérification incorrect."
LOCKED = ("Trop de tentatives infructueuses. Par sécurité, la connexion est suspendue quelques minutes. "
          "Réessayez plus tard.")


def routes(web: PatientWeb) -> list[BaseRoute]:
    async def login_page(request: Request) -> Response:
        notice = None
        if "expiree" in request.query_params:
            notice = "Votre session a expiré après une période d'inactivité. Reconnectez-vous."
        elif "deconnecte" in request.query_params:
            notice = "Vous êtes déconnecté."
        elif "ferme" in request.query_params:
            notice = "Votre espace est fermé. Vos données sont conservées de façon chiffrée."
        return web.render(request, "login.html", notice=notice)

    def check(ins: str, password: str, code: str, ip: str) -> str | None:
        now = web.now()
        with web.db.read() as s:
            patient = by_ins(s, web.keys, ins)
            good = verify_password(patient.password_hash if patient else None, password)
            secret = None
            if patient is not None and good and patient.totp_sealed and patient.mailbox_id is not None:
                mk = web.keys.for_mailbox(s, patient.mailbox_id)
                secret = mk.open("totp", "patient", patient.totp_sealed).decode()
            ok = (patient is not None and patient.state == "open" and secret is not None
                  and totp.verify(secret, code, guard=(web.replay, (patient.mailbox_id, patient.id))))
        if patient is None:
            return None
        with web.db.write() as s:
            if not ok:
                audit.record(s, actor="anonymous", action="patient.login_failed", subject_ref=f"patient:{patient.id}",
                             peer=ip, now=now, keys=web.keys, patient_mailbox=patient.mailbox_id)
                return None
            sessions.purge_expired(s, now=now, lifetimes=web.lifetimes)  # housekeeping, indexed
            token, _ = sessions.create(s, patient.id, mailbox_id=patient.mailbox_id, stage="full", now=now)
            row = by_ins(s, web.keys, ins)
            assert row is not None
            row.last_login_at = now
            audit.record(s, actor=f"patient:{patient.id}", action="patient.login",
                         subject_ref=f"patient:{patient.id}", peer=ip, now=now, keys=web.keys)
        return token

    async def login_post(request: Request) -> Response:
        form = await anon_form(request)
        if form is None:
            return web.problem(request, 403, "Formulaire expiré",
                               "Le formulaire a expiré ou ne vient pas de ce site. Rechargez la page.",
                               back="/connexion")
        ip = client_ip(request)
        ins, key = ins_key(field(form, "ins", 40))
        attempt = await reserve(web, "login", key, ip)
        if attempt is None:
            return web.render(request, "login.html", status=429, error=LOCKED)
        token = None
        if ins is not None:
            token = await web.run(check, ins, field(form, "password", 300), field(form, "code", 20), ip)
        if token is None:
            await failed(web, attempt)
            return web.render(request, "login.html", status=401, error=GENERIC_FAILURE)
        await succeeded(web, attempt)
        response = redirect("/")
        security.set_cookie(request, response, security.session_cookie_name(request), token)
        security.clear_cookie(request, response, security.anon_cookie_name(request))
        return response

    async def logout(request: Request, ctx: Ctx) -> Response:
        def end() -> None:
            with web.db.write() as s:
                sessions.destroy(s, request.cookies.get(security.session_cookie_name(request)))
                audit.record(s, actor=ctx.actor, action="patient.logout", subject_ref=f"patient:{ctx.patient_id}",
                             peer=ctx.ip, keys=web.keys, patient_mailbox=ctx.mailbox_id)

        await web.run(end)
        response = redirect("/connexion?deconnecte=1")
        security.clear_cookie(request, response, security.session_cookie_name(request))
        return response

    return [
        Route("/connexion", login_page, methods=["GET"]),
        Route("/connexion", login_post, methods=["POST"]),
        Route("/deconnexion", page(web, "logout")(logout), methods=["POST"]),
    ]
