"""The serving process: every listener in one asyncio event loop (SPEC §2, §10).

Each listener is started by a small factory (``gateway.app.listeners``) that returns what
runs, with its ``close()``; ``run`` prints what runs where, then waits for SIGINT/SIGTERM and
closes them all. One more SMTP process (``smtp.processes`` > 1) is served by
:mod:`gateway.app.smtp_process`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from gateway.app.gateway import Gateway, on_sighup
from gateway.app.listeners import StartFn, listener_factories
from gateway.app.memory import freeze_startup_objects, return_large_blocks
from gateway.app.tryit import try_it
from gateway.store.services import Services


async def start(svc: Services, factories: list[StartFn] | None = None, *,
                stopping: asyncio.Event | None = None) -> Gateway:
    """Start every listener (or ``factories``) in order; ``stopping`` is the event that ends
    the process (set by SIGINT/SIGTERM in :func:`run`)."""
    return_large_blocks()
    gw = Gateway(svc) if stopping is None else Gateway(svc, stopping=stopping)
    svc.hub.bind(asyncio.get_running_loop())
    try:
        for factory in factories or listener_factories():
            gw.running.append(await factory(gw))
    except BaseException:
        await gw.close()
        raise
    freeze_startup_objects()
    return gw


def describe(gw: Gateway) -> str:
    s = gw.services.settings
    lines = [f"gateway {s.server.hostname} running (config: {gw.services.source})"]
    lines += [f"  {r.name:<12} {r.address:<22} {r.description}" for r in gw.running]
    lines += ["", *try_it(s, gw.services.source)]
    return "\n".join(lines)


async def run(svc: Services) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    gw = await start(svc, stopping=stop)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, on_sighup, gw)
    print(describe(gw), flush=True)
    try:
        await gw.stopping.wait()
    finally:
        await gw.close()
