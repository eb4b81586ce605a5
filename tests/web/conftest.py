"""One live gateway (SQLite) with the standard world for every web test, to keep the run short."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.app.listeners import listener_factories
from gateway.testing.live import LiveGateway, live_gateway, make_home
from gateway.testing.world import World, populate
from tests.web.kit import chromium


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


@pytest.fixture(scope="module")  # module scope: see tests.web.kit.chromium
def browser() -> Iterator[object]:
    with chromium() as instance:
        yield instance
