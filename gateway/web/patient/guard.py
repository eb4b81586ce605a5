"""Routes behind a session: authentication, CSRF check and the audit of every request.

Each request of a logged-in patient is written to the audit trail (``web.<action>``,
subject ``patient:<id>``, peer address, path), in the same transaction that touches the
session: the access history shows it and no request goes unrecorded. Never the content:
query strings (search terms) are not recorded.

A POST is checked before its body is read (issue 15 item 7): its origin, its declared
length against the route's limit (``413``), a live session for its cookie (``403``); then
only the start of the form up to its CSRF token is read (``gateway.web.forms.leading_field``).
The rest of the body (attachments included) is read and parsed by the handler, after all
of these passed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from gateway.accounts import web_sessions as sessions
from gateway.accounts.patients import by_key, patient_ins
from gateway.store import audit
from gateway.web import forms
from gateway.web.patient import security
from gateway.web.patient.state import Ctx, PatientWeb, redirect
from gateway.web.security import client_ip, token_matches

Handler = Callable[[Request, Ctx], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
FORM_OVERHEAD = 2 * 1024 * 1024  # room for text fields and multipart framing beside attachments


def page(web: PatientWeb, action: str, *, stage: str = "full",
         max_body: int | None = None) -> Callable[[Handler], Endpoint]:
    """``max_body``: this route's body limit (default ``web.max_form_bytes``)."""

    def live(token: str | None) -> bool:
        with web.db.read() as s:
            row = sessions.peek(s, token, now=web.now(), lifetimes=web.lifetimes)
            return row is not None and row.stage == stage

    def wrap(handler: Handler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            post = request.method == "POST"
            token = request.cookies.get(security.session_cookie_name(request))
            csrf_given: object = None
            if post:
                if not security.same_origin(request):
                    return web.problem(request, 403, "Requête refusée", "Cette action doit venir de ce site.")
                limit = max_body or web.web.max_form_bytes
                forms.allow_body(request, limit)
                if forms.declared_too_large(request, limit):
                    return web.problem(request, 413, "Envoi trop volumineux",
                                       "Votre envoi dépasse la taille autorisée.", back="/")
                if token is not None and await web.run(live, token):
                    csrf_given, request = await forms.leading_field(request, security.CSRF_FIELD)
            ip = client_ip(request)
            path = request.url.path

            def authenticate() -> tuple[Ctx, bool] | None:
                now = web.now()
                with web.db.write() as s:
                    row = sessions.lookup(s, token, now=now, lifetimes=web.lifetimes)
                    if row is None or row.stage != stage:
                        return None
                    patient = None if row.mailbox_id is None else by_key(s, row.mailbox_id, row.patient_id)
                    usable = patient is not None and patient.mailbox_id is not None and (
                        patient.state == "open" or stage == "activation")
                    ins = patient_ins(s, web.keys, patient) if patient is not None and usable else None
                    if patient is None or patient.mailbox_id is None or not usable or ins is None:
                        s.delete(row)
                        return None
                    ok = not post or token_matches(row.csrf_secret, csrf_given)
                    audit.record(s, actor=f"patient:{patient.id}", action=f"web.{action}" if ok else "web.csrf_refused",
                                 subject_ref=f"patient:{patient.id}", peer=ip, now=now,
                                 details={"method": request.method, "path": path[:200]}, keys=web.keys)
                    return Ctx(patient.id, patient.mailbox_id, ins, row.token_hash, row.csrf_secret, row.stage,
                               ip), ok

            found = await web.run(authenticate)
            if found is None:
                if post:
                    response = web.problem(request, 403, "Session expirée",
                                           "Votre session a expiré. Reconnectez-vous puis recommencez.",
                                           back="/connexion")
                elif stage == "activation":
                    response = redirect("/activation")  # enrolment took too long: start again with the code
                else:
                    response = redirect("/connexion?expiree=1" if token else "/connexion")
                if token:
                    security.clear_cookie(request, response, security.session_cookie_name(request))
                return response
            ctx, ok = found
            if not ok:
                return web.problem(request, 403, "Formulaire expiré",
                                   "Le formulaire a expiré ou ne vient pas de ce site. Rechargez la page.",
                                   ctx=ctx, back="/")
            return await handler(request, ctx)

        endpoint.__name__ = getattr(handler, "__name__", action)
        return endpoint

    return wrap
