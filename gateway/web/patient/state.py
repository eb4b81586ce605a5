"""What every patient route shares: settings, store, throttle, templates, the request context."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.accounts.throttle import LoginThrottle, ThrottleConfig
from gateway.accounts.web_sessions import Lifetimes
from gateway.delivery.runtime import MailRuntime
from gateway.store.services import Services
from gateway.web.patient import security
from gateway.web.patient.totp import ReplayGuard

T = TypeVar("T")
try:
    PARIS: ZoneInfo | None = ZoneInfo("Europe/Paris")
except (ZoneInfoNotFoundError, ValueError):  # no tz database: show UTC, say so
    PARIS = None


@dataclass(frozen=True)
class Ctx:
    """The patient behind a request with a live session."""

    patient_id: int
    mailbox_id: int
    ins: str
    session_key: str  # the session's token hash: its key (gateway.accounts.web_sessions.by_key)
    csrf: str
    stage: str
    ip: str

    @property
    def actor(self) -> str:
        return f"patient:{self.patient_id}"

    @property
    def patient_key(self) -> tuple[int, int]:
        """The patient row's key ``(mailbox_id, id)``: one shard on a distributed store."""
        return self.mailbox_id, self.patient_id


def _size(value: int) -> str:
    if value >= 1024 * 1024:
        return f"{value / (1024 * 1024):.1f} Mo".replace(".", ",")
    if value >= 1024:
        return f"{max(1, round(value / 1024))} Ko"
    return f"{value} octets"


def _date(value: datetime | None) -> str:
    """Dates as French patients read them: Paris time, day first."""
    if value is None:
        return ""
    if PARIS is None:
        return value.astimezone(UTC).strftime("%d/%m/%Y à %H:%M UTC")
    return value.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")


class PatientWeb:
    def __init__(self, services: Services, mail: MailRuntime) -> None:
        self.services = services
        self.mail = mail
        """The process's delivery runtime: replies and read receipts go through its pipeline."""
        self.settings = services.settings
        self.web = self.settings.web
        self.db = services.db
        self.keys = services.keys
        w = self.web
        self.throttle = LoginThrottle(self.db, self.keys, ThrottleConfig(
            window=900.0, delay_after=w.login_delay_after, lockout_after=w.login_lockout_after,
            ip_delay_after=10 * w.login_delay_after, ip_lockout_after=10 * w.login_lockout_after,
            account_slow_after=3 * w.login_lockout_after, lockout=w.login_lockout_minutes * 60.0, max_delay=8.0),
            scope="patient")
        self.lifetimes = Lifetimes(idle=timedelta(minutes=w.session_idle_minutes),
                                   absolute=timedelta(hours=w.session_max_hours))
        self.env = Environment(loader=PackageLoader("gateway.web.patient", "templates"),
                               autoescape=select_autoescape(default=True, default_for_string=True),
                               trim_blocks=True, lstrip_blocks=True)
        self.replay = ReplayGuard(self.db)
        self.env.filters["size"] = _size
        self.env.filters["date"] = _date

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    @staticmethod
    async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Blocking store/crypto work off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    def render(self, request: Request, template: str, *, ctx: Ctx | None = None, status: int = 200,
               **values: Any) -> Response:
        new_cookie: str | None = None
        if ctx is not None:
            csrf = ctx.csrf
        else:
            csrf, fresh = security.anon_csrf(request)
            new_cookie = csrf if fresh else None
        html = self.env.get_template(template).render(ctx=ctx, csrf=csrf, csrf_field=security.CSRF_FIELD,
                                                      limits=self.web, **values)
        response = HTMLResponse(html, status_code=status)
        if new_cookie is not None:
            security.set_cookie(request, response, security.anon_cookie_name(request), new_cookie)
        return response

    def problem(self, request: Request, status: int, title: str, text: str, *, ctx: Ctx | None = None,
                back: str | None = None) -> Response:
        return self.render(request, "problem.html", ctx=ctx, status=status, title=title, text=text, back=back)

    def not_found(self, request: Request, ctx: Ctx | None = None) -> Response:
        return self.problem(request, 404, "Page introuvable",
                            "Ce message ou cette page n'existe pas, ou n'est pas accessible avec votre compte.",
                            ctx=ctx, back="/")


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303)
