"""Run the gateway for the benchmark: ``gateway serve``'s own start-up, in this process.

    .venv/bin/python bench/gateway_serve.py HOME

Same code path as ``gateway serve`` (``gateway.app.server.start`` over
``gateway.app.listeners.listener_factories()``) with one difference, printed at start: the
outbound queue worker is left out, so that nothing (patient notifications queued by
deliveries) is ever sent anywhere: the benchmark's traffic stays on 127.0.0.1.

Listen addresses and every other setting come from ``HOME/gateway.toml`` and the
``GATEWAY__*`` environment, as for ``gateway serve``. SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ holds scripts named like our packages (bench/imap.py): never let them shadow them
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import asyncio  # noqa: E402
import contextlib  # noqa: E402
import signal  # noqa: E402

from gateway.app.context import Location, open_services  # noqa: E402
from gateway.app.listeners import listener_factories  # noqa: E402
from gateway.app.logs import configure as configure_logging  # noqa: E402
from gateway.app.server import describe, start  # noqa: E402


async def main(home: Path) -> None:
    svc = open_services(Location(home / "gateway.toml", home, True))
    configure_logging(svc.settings.logging)
    factories = [f for f in listener_factories() if f.__name__ != "start_outbound"]
    notes = ["outbound worker left out (no traffic beyond loopback)"]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        gw = await start(svc, factories)
        print(describe(gw), *notes, sep="\n", flush=True)
        try:
            await stop.wait()
        finally:
            await gw.close()
    finally:
        svc.close()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
