"""One live gateway (SQLite) with the standard world for every web test, to keep the run short."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.app.listeners import listener_factories
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.world import World, populate
from tests.conftest import require
from tests.web.kit import CHROMIUM, CHROMIUM_ARGS, chromium_problem


@dataclass
class Site:
    home: Path
    world: World
    live: LiveGateway


def _factories() -> list[object]:
    """Every listener of ``gateway serve``, the queue worker and the jobs included (IMAP too, so
    replies can be fetched over IMAP)."""
    return list(listener_factories())


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home = make_home(tmp_path_factory.mktemp("web") / "home",
                     extra_config="\n[web]\nlogin_delay_after = 3\nlogin_lockout_after = 5\n")
    text = (home / "gateway.toml").read_text().replace("[tls]\n", "[tls]\nallow_auth_without_tls = true\n", 1)
    (home / "gateway.toml").write_text(text)
    world = populate(home)
    with live_gateway(home, factories=_factories()) as live:
        yield Site(home, world, live)


# Module scope: Playwright's sync API keeps an asyncio loop running in this thread while
# it is open, which would break every later test that starts its own loop.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require(chromium_problem(), "Chromium for Playwright")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()
