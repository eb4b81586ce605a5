"""The serving process: every listener in one asyncio event loop (SPEC §2, §10).

Each listener is started by a small factory that returns an object with ``close()``;
``run`` prints what runs where, then waits for SIGINT/SIGTERM and closes them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.app.context import Services
from gateway.app.tryit import try_it

if TYPE_CHECKING:
    from gateway.delivery.smtp_listener import MailRuntime
    from gateway.delivery.smtp_processes import WorkerSet
    from gateway.net.budgets import Budgets

log = logging.getLogger("gateway.server")


@dataclass
class Running:
    name: str
    address: str
    description: str
    close: Callable[[], Awaitable[None]]
    listen_fds: tuple[int, ...] = ()
    """Listening sockets' descriptors, for listeners that the SMTP processes share
    (``gateway.delivery.smtp_processes``)."""


@dataclass
class Gateway:
    services: Services
    running: list[Running] = field(default_factory=list)
    mail: MailRuntime | None = None
    smtp_workers: WorkerSet | None = None
    budgets: Budgets | None = None  # connection and memory budgets of this process (gateway.net.budgets)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    web_app: Any = None
    """The web application, built once and shared by the HTTP and HTTPS listeners."""
    background: set[asyncio.Future[bool]] = field(default_factory=set)

    async def close(self) -> None:
        for item in reversed(self.running):
            with contextlib.suppress(Exception):
                await item.close()
        self.running.clear()


StartFn = Callable[[Gateway], Awaitable[Running]]


def listener_factories() -> list[StartFn]:
    from gateway.delivery.smtp_listener import start_mx, start_outbound, start_submission, start_submissions
    from gateway.delivery.smtp_processes import start_smtp_workers
    from gateway.imap_adapter.listener import start_imap, start_imaps
    from gateway.web.admin.metrics_http import start_metrics
    from gateway.web.server import start_http, start_https

    return [start_changes, start_mx, start_submission, start_submissions, start_smtp_workers, start_imap,
            start_imaps, start_http, start_https, start_metrics, start_outbound, start_jobs]


async def start_changes(gw: Gateway) -> Running:
    """Cross-node change notifications (IMAP IDLE and open sessions) on PostgreSQL."""
    if gw.services.db.is_sqlite:
        async def nothing() -> None:
            return None

        return Running("changes", "-", "in-process change notifications (single node)", nothing)
    from gateway.store.changes import PgChangeListener

    listener = PgChangeListener(gw.services.db.url, gw.services.hub)
    listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), 10)
    except TimeoutError:
        await listener.stop()
        raise OSError("cannot LISTEN for changes on the PostgreSQL database") from None
    return Running("changes", "-", "PostgreSQL LISTEN/NOTIFY for changes from other nodes", listener.stop)


async def start_jobs(gw: Gateway) -> Running:
    """Lifecycle jobs every ``jobs.interval_seconds`` (advisory locks: once per period per cluster)."""
    from gateway.accounts.jobs import run_periodically

    task = asyncio.create_task(run_periodically(gw.services), name="lifecycle-jobs")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return Running("jobs", "-", f"lifecycle jobs every {gw.services.settings.jobs.interval_seconds:g} s", stop)


async def start(svc: Services, factories: list[StartFn] | None = None) -> Gateway:
    from gateway.app.memory import freeze_startup_objects, return_large_blocks

    return_large_blocks()
    gw = Gateway(svc)
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


def reload_keys_now(svc: Services, reason: str) -> bool:
    """Re-read the master key file (blocking: call it in a thread). Keeps the old ring when the
    file is unusable or does not open every version the database uses (one log line)."""
    with svc.db.read() as session:
        return svc.keys.reload(session, reason=reason)


def on_sighup(gw: Gateway) -> None:
    """SIGHUP: re-read the master key file here and in every SMTP worker process."""
    log.info("SIGHUP: re-reading the master key file")
    if gw.smtp_workers is not None:
        gw.smtp_workers.send_signal(signal.SIGHUP)
    task = asyncio.get_running_loop().create_task(asyncio.to_thread(reload_keys_now, gw.services, "SIGHUP"))
    gw.background.add(task)
    task.add_done_callback(gw.background.discard)


async def run(svc: Services) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    gw = await start(svc)
    gw.stopping = stop
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, on_sighup, gw)
    print(describe(gw), flush=True)
    try:
        await gw.stopping.wait()
    finally:
        await gw.close()
