"""Helpers of the forms used before login (login, activation, opposition): double-submit
CSRF token and the failure throttle keyed by INS and client address."""

from __future__ import annotations

import asyncio
import time

from starlette.datastructures import FormData
from starlette.requests import Request

from gateway import metrics
from gateway.accounts.throttle import Reservation
from gateway.web import forms
from gateway.web.patient import security
from gateway.web.patient.state import PatientWeb
from gateway.web.security import token_matches
from routing.ins import InvalidINS, normalise_ins

MAX_ANON_FORM = 16 * 1024


async def anon_form(request: Request) -> FormData | None:
    """The submitted form, or ``None`` when it is cross-site, too large or lacks the token.

    Checked before the body is read: the origin, the declared length, the token's cookie;
    then the start of the form up to the token (``gateway.web.forms.leading_field``)."""
    if not security.same_origin(request):
        return None
    forms.allow_body(request, MAX_ANON_FORM)
    length = request.headers.get("content-length")
    if length is None or forms.declared_too_large(request, MAX_ANON_FORM):
        return None
    cookie = request.cookies.get(security.anon_cookie_name(request))
    if not cookie:
        return None
    given, request = await forms.leading_field(request, security.CSRF_FIELD)
    if not token_matches(cookie, given):
        return None
    return await request.form(max_files=0, max_fields=20)


def field(form: FormData, name: str, limit: int = 512) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def ins_key(raw: str) -> tuple[str | None, str]:
    """(the normalised INS or None, the throttle account key)."""
    try:
        ins = normalise_ins(raw)
    except InvalidINS:
        return None, "invalid:" + "".join(raw.split())[:20]
    return ins, ins


async def reserve(web: PatientWeb, kind: str, account: str, ip: str) -> Reservation | None:
    """Count this attempt before the secret is checked (shared by every node through the
    database, ``LoginThrottle``); ``None`` when it is refused: answer at once, check nothing."""
    reservation = await web.throttle.admit(f"{kind}:{account}", ip, web.run)
    if not reservation.allowed:
        metrics.login_failure("web", reservation.reason)
        return None
    return reservation


async def failed(web: PatientWeb, reservation: Reservation) -> None:
    """The secret was wrong: the attempt counts as a failure; wait the delay due."""
    await web.run(web.throttle.failed, reservation, time.time())
    if reservation.delay:
        await asyncio.sleep(reservation.delay)


async def succeeded(web: PatientWeb, reservation: Reservation) -> None:
    await web.run(web.throttle.succeeded, reservation, time.time())
