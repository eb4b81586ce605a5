"""Helpers for the web inbox tests: a live gateway with a populated world, CLI provisioning,
patients activated over HTTP, professionals' mail over SMTP, and Chromium via Playwright."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp
from sqlalchemy import select

from gateway.accounts import ins_index
from gateway.app.cli.main import main as cli_main
from gateway.store.models import Patient
from gateway.testing.live import LiveGateway
from gateway.testing.smtpclient import submission_client, transaction
from gateway.testing.world import PASSWORD, World
from routing.ins import synthetic_ins

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PATIENT_PASSWORD = "Une phrase de passe bien longue 42"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
_rng_counter = iter(range(10_000, 1_000_000))


def chromium_problem() -> str | None:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        return f"{CHROMIUM} not found"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"playwright not importable: {exc}"
    return None


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium driven by Playwright (skipped locally, failed in CI, when missing).

    For a module-scoped fixture: Playwright's sync API keeps an asyncio loop running in this
    thread while it is open, which would break every later test that starts its own loop."""
    from tests.conftest import require

    require(chromium_problem(), "Chromium for Playwright")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


def new_ins() -> str:
    import random

    return synthetic_ins(random.Random(next(_rng_counter)))


def provision(home: Path, ins: str) -> str:
    """``gateway patient add INS`` as an admin would run it; returns the printed activation code."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli_main(["--home", str(home), "patient", "add", ins]) == 0
    found = re.search(r"activation code: (\S+)", out.getvalue())
    assert found, out.getvalue()
    return found.group(1)


def totp_now(secret: str, *, ahead: int = 0) -> str:
    """A code for ``ahead`` steps later (the server accepts ±1 step and each step once)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * ahead)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


@dataclass
class Account:
    ins: str
    secret: str
    patient_id: int


def base_url(live: LiveGateway) -> str:
    return f"http://127.0.0.1:{live.port('http')}"


def activate_http(live: LiveGateway, ins: str, code: str) -> Account:
    """Activation over plain HTTP (httpx), for tests that are not about the browser."""
    with httpx.Client(base_url=base_url(live), follow_redirects=True) as c:
        r = c.post("/activation", data={"ins": ins, "code": code, "csrf": csrf_of(c.get("/activation").text)})
        assert r.status_code == 200 and "mot de passe" in r.text, r.text[:500]
        r = c.post("/activation/mot-de-passe", data={"password": PATIENT_PASSWORD, "confirmation": PATIENT_PASSWORD,
                                                     "csrf": csrf_of(r.text)})
        found = re.search(r'<code class="secret"[^>]*>([A-Z2-7 ]+)</code>', r.text)
        assert found, r.text[:500]
        secret = found.group(1).replace(" ", "")
        r = c.post("/activation/double-authentification", data={"code": totp_now(secret), "csrf": csrf_of(r.text)})
        assert r.status_code == 200 and "Mes messages" in r.text
    with live.services.db.read() as s:
        pid = s.execute(select(Patient.id).where(ins_index.match(live.services.keys, s, ins))).scalar_one()
    return Account(ins, secret, int(pid))


@contextlib.contextmanager
def login_http(live: LiveGateway, account: Account, *, ahead: int = 1) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url(live), follow_redirects=True) as c:
        r = c.post("/connexion", data={"ins": account.ins, "password": PATIENT_PASSWORD,
                                       "code": totp_now(account.secret, ahead=ahead),
                                       "csrf": csrf_of(c.get("/connexion").text)})
        assert r.status_code == 200 and "Mes messages" in r.text, r.text[:300]
        yield c


def pro_sends(live: LiveGateway, world: World, ins: str, *, subject: str = "Vos résultats", body: bytes | None = None,
              extra: str = "", content_type: str = "text/plain; charset=utf-8") -> str:
    """A hosted professional writes to the patient over SMTP submission; returns the Message-ID."""
    mid = f"<{uuid.uuid4().hex}@clinic.test>"
    to = f"{ins}@{world.patient_domain}"
    head = (f"From: Dr Martin <{world.pro}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {mid}\r\n"
            f"Date: Mon, 23 Nov 2026 09:00:00 +0100\r\nMIME-Version: 1.0\r\n{extra}")
    raw = body if body is not None else (f"{head}Content-Type: {content_type}\r\n\r\nBonjour,\r\nvoici vos "
                                         "résultats.\r\n").encode()
    if body is not None:
        raw = head.encode() + body
    with submission_client(live, world.pro, PASSWORD) as client:
        t = transaction(client, world.pro, [to], raw)
    assert t.data is not None and t.data[0] == 250, t
    return mid


def with_attachment(text: str, filename: str, data: bytes, ctype: str = "application/pdf") -> bytes:
    import base64

    b = "=_fronti3re"
    encoded = base64.encodebytes(data).decode().replace("\n", "\r\n")
    return (f'Content-Type: multipart/mixed; boundary="{b}"\r\n\r\n--{b}\r\n'
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n"
            f'--{b}\r\nContent-Type: {ctype}; name="{filename}"\r\nContent-Transfer-Encoding: base64\r\n'
            f'Content-Disposition: attachment; filename="{filename}"\r\n\r\n{encoded}--{b}--\r\n').encode()
