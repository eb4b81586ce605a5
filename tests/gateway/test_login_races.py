"""Issue 15 item 2: 100 concurrent wrong logins never check the secret more than the limit
allows, on every login path of a live gateway (SMTP AUTH, IMAP LOGIN, the patient web,
the admin console).

Each path's checks are counted in the audit trail (every checked attempt is audited;
attempts refused by the throttle are not checked and leave no ``*.login`` entry).
"""

from __future__ import annotations

import base64
import imaplib
import re
import smtplib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from gateway.store.models import AuditEntry
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.ports import listen_env
from gateway.testing.world import PASSWORD, World, populate
from smtp.session import MAX_AUTH_FAILURES
from tests.admin_web.conftest import add_admin_account

LIMIT = 10  # the default lockout for one account from one network, on every path
ADMIN = "alice"
ADMIN_PASSWORD = "an admin passphrase 42"


@pytest.fixture(scope="module")
def world_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, LiveGateway]]:
    home = make_home(tmp_path_factory.mktemp("races") / "home")
    text = (home / "gateway.toml").read_text().replace("[tls]\n", "[tls]\nallow_auth_without_tls = true\n", 1)
    (home / "gateway.toml").write_text(text)
    world = populate(home)
    add_admin_account(home, ADMIN, ADMIN_PASSWORD)
    # Short delays keep the test quick; the limits are the defaults.
    env = {**listen_env(), "GATEWAY__AUTH__MAX_DELAY_SECONDS": "0.5"}
    with live_gateway(home, env=env) as live:
        yield world, live


def checks(live: LiveGateway, action: str) -> int:
    with live.services.db.read() as s:
        return int(s.execute(select(func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action == action)).scalar_one())


def hammer(connections: int, attempts: int, one: Callable[[], list[bool]]) -> list[bool]:
    """``connections`` clients started together, each making ``attempts`` wrong logins."""
    start = threading.Barrier(connections)

    def client() -> list[bool]:
        start.wait(30)
        return one()

    with ThreadPoolExecutor(connections) as pool:
        results = list(pool.map(lambda _: client(), range(connections)))
    flat = [ok for r in results for ok in r]
    assert len(flat) == connections * attempts
    return flat


def test_smtp_auth(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    before = checks(live, "smtp.login")
    token = base64.b64encode(f"\0{world.pro}\0wrong password".encode()).decode()

    def one() -> list[bool]:
        answers: list[bool] = []
        while len(answers) < 5:  # a session closes at its MAX_AUTH_FAILURES-th failure: stay below it
            with smtplib.SMTP("127.0.0.1", live.port("submission"), timeout=90) as smtp:
                smtp.ehlo("racer.test")
                for _ in range(min(MAX_AUTH_FAILURES - 1, 5 - len(answers))):
                    answers.append(smtp.docmd("AUTH", f"PLAIN {token}")[0] == 535)
        return answers

    answers = hammer(20, 5, one)
    assert 1 <= checks(live, "smtp.login") - before <= LIMIT
    assert not all(answers)  # the rest were refused (454) without a check
    with smtplib.SMTP("127.0.0.1", live.port("submission"), timeout=30) as smtp:
        smtp.ehlo("racer.test")
        right = base64.b64encode(f"\0{world.pro}\0{PASSWORD}".encode()).decode()
        assert smtp.docmd("AUTH", f"PLAIN {right}")[0] == 454  # locked for this network


def test_imap_login(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    before = checks(live, "imap.login")

    def one() -> list[bool]:
        client = imaplib.IMAP4("127.0.0.1", live.port("imap"), timeout=90)
        out = []
        try:
            for _ in range(5):
                try:
                    client.login(world.colleague, "wrong password")
                    out.append(False)
                except imaplib.IMAP4.error:
                    out.append(True)
        finally:
            client.shutdown()
        return out

    assert all(hammer(20, 5, one))
    assert 1 <= checks(live, "imap.login") - before <= LIMIT


def _form(client: httpx.Client, path: str, field: str) -> str:
    page = client.get(path)
    found = re.search(rf'name="{field}" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def test_patient_web_login(world_live: tuple[World, LiveGateway]) -> None:
    world, live = world_live
    base = f"http://127.0.0.1:{live.port('http')}"
    before = checks(live, "patient.login_failed")

    def one() -> list[bool]:
        with httpx.Client(base_url=base, timeout=90) as client:
            out = []
            for _ in range(5):
                csrf = _form(client, "/connexion", "csrf")
                r = client.post("/connexion", data={"ins": world.patients["open"], "password": "wrong password",
                                                    "code": "000000", "csrf": csrf})
                out.append(r.status_code in (401, 429))
            return out

    assert all(hammer(20, 5, one))
    assert 1 <= checks(live, "patient.login_failed") - before <= LIMIT


def test_admin_console_login(world_live: tuple[World, LiveGateway]) -> None:
    _, live = world_live
    base = f"http://127.0.0.1:{live.port('http')}/admin"

    def failed_logins() -> int:
        with live.services.db.read() as s:
            return int(s.execute(select(func.count()).select_from(AuditEntry).where(
                AuditEntry.action == "admin.login", AuditEntry.details.like('%"failed"%'))).scalar_one())

    before = failed_logins()

    def one() -> list[bool]:
        with httpx.Client(base_url=base, timeout=90) as client:
            out = []
            for _ in range(5):
                token = _form(client, "/login", "login_csrf")
                r = client.post("/login", data={"name": ADMIN, "password": "wrong password", "code": "000000",
                                                "login_csrf": token})
                out.append(r.status_code in (401, 429))
            return out

    assert all(hammer(20, 5, one))
    assert 1 <= failed_logins() - before <= LIMIT
