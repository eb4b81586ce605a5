""""Mot de passe oublié / téléphone perdu" (issue 14): ask for a new activation code by e-mail.

The patient gives the INS; when the space has a personal address on file a new code is mailed
to it (``gateway.operations.recovery.self_service``: one mail per ``patients.recovery_mail_interval_minutes``).
The page answers the same whether or not the INS exists or has an address, and the work runs
after the answer is sent, so neither the text nor the time tells. Requests are counted in the
shared throttle (per INS and per client address) like failed logins. Without an address, the
page sends the patient to a mediator (France Services), who can issue a code in person.
"""

from __future__ import annotations

import logging

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.operations import recovery
from gateway.web.patient.anon import anon_form, failed, field, ins_key, reserve
from gateway.web.patient.state import PatientWeb
from gateway.web.security import client_ip

log = logging.getLogger(__name__)
LOCKED = "Trop de demandes. Par sécurité, réessayez dans quelques minutes."
BAD_INS = "Ce numéro INS n'est pas valide : vérifiez les 15 caractères (13 chiffres ou lettres et la clé)."


def routes(web: PatientWeb) -> list[BaseRoute]:
    def request_code(ins: str, ip: str) -> None:
        try:
            outcome = recovery.self_service(web.db, web.keys, web.settings, ins, peer=ip, now=web.now())
        except Exception as exc:  # after the answer: nobody to tell but the log (never the INS)
            log.warning("recovery request failed", extra={"error": type(exc).__name__})
            return
        log.info("recovery request", extra={"outcome": outcome})

    async def show(request: Request) -> Response:
        return web.render(request, "forgot.html", sent=False)

    async def submit(request: Request) -> Response:
        form = await anon_form(request)
        if form is None:
            return web.problem(request, 403, "Formulaire expiré",
                               "Le formulaire a expiré ou ne vient pas de ce site. Rechargez la page.",
                               back="/mot-de-passe-oublie")
        ip = client_ip(request)
        ins, key = ins_key(field(form, "ins", 40))
        attempt = await reserve(web, "recovery", key, ip)  # every request counts: no mail bombing, no INS sweeping
        if attempt is None:
            return web.render(request, "forgot.html", status=429, error=LOCKED, sent=False)
        await failed(web, attempt)
        if ins is None:
            return web.render(request, "forgot.html", status=400, error=BAD_INS, sent=False)
        response = web.render(request, "forgot.html", sent=True)
        response.background = BackgroundTask(request_code, ins, ip)
        return response

    return [
        Route("/mot-de-passe-oublie", show, methods=["GET"]),
        Route("/mot-de-passe-oublie", submit, methods=["POST"]),
    ]
