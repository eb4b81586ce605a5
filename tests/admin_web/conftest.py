"""One live gateway (SQLite) with the standard world and an administrator, for every admin web test."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyotp
import pytest

from gateway.accounts.admins import add_admin, create_token
from gateway.app.context import Location, open_services
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.world import World, populate
from tests.web.kit import chromium

ADMIN = "alice"
ADMIN_PASSWORD = "une phrase d'administration"


@dataclass
class AdminSite:
    home: Path
    world: World
    live: LiveGateway
    totp: pyotp.TOTP
    token: str
    step: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.live.port('http')}"

    def code(self) -> str:
        """A TOTP code for a step never used before (the server accepts each step once, ±1 step)."""
        step = max(self.step + 1, int(time.time()) // 30)
        while step > int(time.time()) // 30 + 1:
            time.sleep(0.5)
        self.step = step
        return str(self.totp.at(step * 30))

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/admin/api", headers={"Authorization": f"Bearer {self.token}"})


def add_admin_account(home: Path, name: str, password: str) -> tuple[str, str]:
    services = open_services(Location(home / "gateway.toml", home, True))
    try:
        with services.db.write() as session:
            created = add_admin(session, services.keys, name, password, now=datetime.now(UTC))
            token = create_token(session, name, label="tests", now=datetime.now(UTC))
    finally:
        services.close()
    return created.totp_secret, token


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminSite]:
    home = make_home(tmp_path_factory.mktemp("admin-web") / "home")
    text = (home / "gateway.toml").read_text().replace("[tls]\n", "[tls]\nallow_auth_without_tls = true\n", 1)
    (home / "gateway.toml").write_text(text)
    world = populate(home)
    secret, token = add_admin_account(home, ADMIN, ADMIN_PASSWORD)
    with live_gateway(home) as live:
        yield AdminSite(home, world, live, pyotp.TOTP(secret), token)


@pytest.fixture(scope="module")  # module scope: see tests.web.kit.chromium
def browser() -> Iterator[object]:
    with chromium() as instance:
        yield instance
