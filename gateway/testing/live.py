"""A real gateway running in a background thread (its own event loop), for tests.

Tests then drive it with blocking clients (smtplib, imaplib, swaks, mutt...) exactly
as users do. Every listener is on a free loopback port.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.app.context import Location, init_home, open_services
from gateway.app.gateway import Gateway
from gateway.app.server import start
from gateway.store.services import Services
from gateway.testing.ports import listen_env


@dataclass
class LiveGateway:
    home: Path
    services: Services
    gateway: Gateway
    loop: asyncio.AbstractEventLoop
    env: dict[str, str]

    def port(self, name: str) -> int:
        return self.services.settings.listen.address(name)[1]

    @property
    def ca_file(self) -> str:
        return str(self.services.settings.path(self.services.settings.tls.ca_file))

    def run(self, coro: object, timeout: float = 30.0) -> object:
        """Run a coroutine on the gateway's loop from the test thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]


def make_home(root: Path, *, hostname: str = "mx.gateway.test", patient_domain: str = "patients.gateway.test",
              storage_url: str | None = None, extra_config: str = "") -> Path:
    """A state folder from ``gateway init``, optionally pointed at another database.

    With ``GATEWAY_TEST_STORE=postgresql`` in the environment every home gets its own
    PostgreSQL database (dropped when the test process exits) instead of SQLite.
    """
    if storage_url is None and os.environ.get("GATEWAY_TEST_STORE") == "postgresql":
        from gateway.testing.pg import create_database

        storage_url = create_database()
    init_home(root, hostname=hostname, patient_domain=patient_domain)
    config = root / "gateway.toml"
    text = config.read_text()
    if storage_url:
        text = text.replace('url = "sqlite:///gateway.db"', f'url = "{storage_url}"')
    config.write_text(text + extra_config)
    return root


@contextmanager
def live_gateway(home: Path, *, env: Mapping[str, str] | None = None, factories: list[object] | None = None,
                 outbound: bool = False) -> Iterator[LiveGateway]:
    """Start every listener (or ``factories``) of the gateway in ``home``; stop them afterwards.

    The outbound queue worker runs only with ``outbound=True`` (routes in trust entries point
    at loopback peers); the periodic lifecycle jobs never run here (tests call them directly).
    """
    if factories is None:
        from gateway.app.listeners import listener_factories

        skip = {"start_jobs"} if outbound else {"start_jobs", "start_outbound"}
        factories = [f for f in listener_factories() if f.__name__ not in skip]
    overrides = dict(env or listen_env())
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        services = open_services(Location(home / "gateway.toml", home, True))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    holder: dict[str, object] = {}

    async def main() -> None:
        try:
            gw = await start(services, factories)  # type: ignore[arg-type]
        except BaseException as exc:
            holder["error"] = exc
            ready.set()
            return
        holder["gw"] = gw
        ready.set()
        await stop.wait()
        await gw.close()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), name="live-gateway", daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("gateway did not start within 30 s")
    if "error" in holder:
        thread.join(5)
        services.close()
        raise holder["error"]  # type: ignore[misc]
    live = LiveGateway(home, services, holder["gw"], loop, overrides)  # type: ignore[arg-type]
    try:
        yield live
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()
        services.close()
