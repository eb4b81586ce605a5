"""The listener factories of ``gateway serve``: each takes the process's
:class:`~gateway.app.gateway.Gateway`, hands the listener what it needs from it (settings,
budgets, the delivery runtime, the IMAP backend, the web application) and returns what runs.

:func:`listener_factories` is the order ``gateway serve`` starts them in; tests start a
subset (``gateway.testing.live.live_gateway(factories=...)``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from gateway.accounts.jobs import run_periodically
from gateway.app.gateway import Gateway
from gateway.delivery.smtp_listener import start_smtp_listener
from gateway.delivery.smtp_processes import SMTP_LISTENERS, SmtpProcesses
from gateway.imap_adapter.listener import start_imap_listener
from gateway.net.running import Running
from gateway.outbound.worker import from_services
from gateway.store.changes import PgChangeListener
from gateway.web.admin.metrics_http import start_metrics_listener
from gateway.web.server import start_http_listener, start_https_listener

StartFn = Callable[[Gateway], Awaitable[Running]]


def listener_factories() -> list[StartFn]:
    return [start_changes, start_mx, start_submission, start_submissions, start_smtp_processes, start_imap,
            start_imaps, start_http, start_https, start_metrics, start_outbound, start_jobs]


async def _nothing() -> None:
    return None


async def start_changes(gw: Gateway) -> Running:
    """Cross-node change notifications (IMAP IDLE and open sessions) on PostgreSQL."""
    if gw.services.db.is_sqlite:
        return Running("changes", "-", "in-process change notifications (single node)", _nothing)
    listener = PgChangeListener(gw.services.db.url, gw.services.hub)
    listener.start()
    try:
        await asyncio.wait_for(listener.listening.wait(), 10)
    except TimeoutError:
        await listener.stop()
        raise OSError("cannot LISTEN for changes on the PostgreSQL database") from None
    return Running("changes", "-", "PostgreSQL LISTEN/NOTIFY for changes from other nodes", listener.stop)


async def start_mx(gw: Gateway) -> Running:
    # The trust list before the first connection: the MX gate reads operators' allowances from it.
    await asyncio.to_thread(gw.mail.directory.snapshot)
    return await start_smtp_listener(gw.services.settings, gw.mail, gw.budgets, "mx")


async def start_submission(gw: Gateway) -> Running:
    return await start_smtp_listener(gw.services.settings, gw.mail, gw.budgets, "submission")


async def start_submissions(gw: Gateway) -> Running:
    return await start_smtp_listener(gw.services.settings, gw.mail, gw.budgets, "submissions")


async def start_smtp_processes(gw: Gateway) -> Running:
    """After the SMTP listeners: the ``smtp.processes - 1`` more SMTP processes on their sockets."""
    count = gw.services.settings.smtp.processes
    sockets = {r.name: list(r.listen_fds) for r in gw.running if r.name in SMTP_LISTENERS and r.listen_fds}
    if count <= 1 or not sockets:
        return Running("smtp-procs", "-", "SMTP sessions in this process only (smtp.processes = 1)", _nothing)
    processes = SmtpProcesses(gw.services, gw.stopping, sockets, count)
    processes.start()
    gw.smtp_processes = processes
    return Running("smtp-procs", "-", f"{count - 1} more SMTP processes on the same sockets", processes.close)


async def start_imap(gw: Gateway) -> Running:
    return await start_imap_listener(gw.services.settings, gw.imap_backend, gw.budgets, "imap", implicit_tls=False,
                                     description="IMAP with STARTTLS (professionals)")


async def start_imaps(gw: Gateway) -> Running:
    return await start_imap_listener(gw.services.settings, gw.imap_backend, gw.budgets, "imaps", implicit_tls=True,
                                     description="IMAP over TLS (professionals)")


async def start_http(gw: Gateway) -> Running:
    return await start_http_listener(gw.services.settings, gw.budgets, gw.web_app)


async def start_https(gw: Gateway) -> Running:
    return await start_https_listener(gw.services.settings, gw.budgets, gw.web_app)


async def start_metrics(gw: Gateway) -> Running:
    return await start_metrics_listener(gw.services)


async def start_outbound(gw: Gateway) -> Running:
    """The outbound queue worker; bounces and DSNs to local users go through the pipeline."""
    worker = from_services(gw.services, gw.mail.internal.submit_callback)
    q = gw.services.settings.queue
    return Running("outbound", "-", f"queue worker ({q.concurrency} deliveries at once)", worker.stop)


async def start_jobs(gw: Gateway) -> Running:
    """Lifecycle jobs every ``jobs.interval_seconds`` (advisory locks: once per period per cluster)."""
    task = asyncio.create_task(run_periodically(gw.services), name="lifecycle-jobs")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return Running("jobs", "-", f"lifecycle jobs every {gw.services.settings.jobs.interval_seconds:g} s", stop)
