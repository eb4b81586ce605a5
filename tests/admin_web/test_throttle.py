"""Admin login throttling: repeated failures lock the name out (ASGI app, fast throttle)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.accounts.throttle import LoginThrottle, ThrottleConfig
from gateway.app.context import Location, open_services
from gateway.store.services import Services
from gateway.testing.live import make_home
from gateway.web.admin import build
from gateway.web.admin.context import AdminContext
from tests.admin_web.conftest import ADMIN, ADMIN_PASSWORD, add_admin_account


@pytest.fixture
def services(tmp_path: Path) -> Iterator[tuple[Services, str]]:
    home = make_home(tmp_path / "home")
    secret, _ = add_admin_account(home, ADMIN, ADMIN_PASSWORD)
    svc = open_services(Location(home / "gateway.toml", home, True))
    try:
        yield svc, secret
    finally:
        svc.close()


def test_lockout_after_repeated_failures_even_with_the_right_code(services: tuple[Services, str]) -> None:
    import pyotp

    svc, secret = services
    throttle = LoginThrottle(svc.db, svc.keys, ThrottleConfig(delay_after=2, lockout_after=3, base_delay=0.01,
                                           max_delay=0.02, lockout=4.0), scope="admin")
    app = build(AdminContext(svc, throttle=throttle))
    with TestClient(app, base_url="http://testserver/admin", root_path="/admin") as client:
        def attempt(password: str) -> int:
            page = client.get("/login")
            token = page.text.split('name="login_csrf" value="')[1].split('"')[0]
            return client.post("/login", data={"name": ADMIN, "password": password, "code": pyotp.TOTP(secret).now(),
                                               "login_csrf": token}, follow_redirects=False).status_code

        assert [attempt("wrong password!") for _ in range(3)] == [401, 401, 401]
        locked = attempt(ADMIN_PASSWORD)
        assert locked == 429
    time.sleep(4.1)  # the lockout is over (4 s: a busy machine needs more than 1 s for 3 argon2 checks)
    with TestClient(app, base_url="http://testserver/admin", root_path="/admin") as client:
        page = client.get("/login")
        token = page.text.split('name="login_csrf" value="')[1].split('"')[0]
        r = client.post("/login", data={"name": ADMIN, "password": ADMIN_PASSWORD,
                                        "code": pyotp.TOTP(secret).now(), "login_csrf": token}, follow_redirects=False)
        assert r.status_code == 303
