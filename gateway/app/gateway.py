"""One process's runtime: its services, what runs, and every shared runtime built once.

The composition root makes one :class:`Gateway` per process (``gateway serve``, each SMTP
process, a test's live gateway). Each runtime below is built the first time a listener
needs it, then shared: the connection and memory budgets, the delivery runtime (directory,
pipeline, authenticator: SMTP, the web inbox, the IMAP backend and the queue worker use the
same one), the IMAP backend and the web application. Listeners receive these as arguments
(``gateway.app.listeners``); none of them imports this module. The web and IMAP modules are
imported when first needed, so that an SMTP process (``gateway.app.smtp_process``) never
loads them.

SIGHUP makes every process re-read its master key file (:func:`on_sighup`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from gateway.delivery.runtime import MailRuntime
from gateway.delivery.smtp_processes import SmtpProcesses
from gateway.net.budgets import Budgets, process_budgets
from gateway.net.running import Running
from gateway.store.services import Services

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from gateway.imap_adapter.backend import StoreBackend

log = logging.getLogger("gateway.server")


@dataclass
class Gateway:
    services: Services
    running: list[Running] = field(default_factory=list)
    smtp_processes: SmtpProcesses | None = None
    """The extra SMTP processes, when ``smtp.processes`` > 1 (SIGHUP is passed on to them)."""
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    background: set[asyncio.Future[bool]] = field(default_factory=set)

    @cached_property
    def budgets(self) -> Budgets:
        """This process's budgets, made (and the open-file limit raised) by the first listener.
        On the MX a trusted operator's addresses get their entry's allowance (issue 17)."""
        made = process_budgets(self.services.settings)
        made.address_limits("mx", self._mx_address_limit)
        return made

    def _mx_address_limit(self, ip: str) -> int | None:
        # Only the MX gate calls it, once the MX listener has built the delivery runtime.
        return self.mail.directory.connection_limit(ip)

    @cached_property
    def mail(self) -> MailRuntime:
        """What the SMTP sessions, the web inbox and the queue worker of this process share."""
        return MailRuntime.build(self.services)

    @cached_property
    def imap_backend(self) -> StoreBackend:
        """The one IMAP backend of this process (both IMAP listeners); its login throttle is the
        SMTP listeners' one (failed logins limited alike)."""
        from gateway.imap_adapter.backend import StoreBackend  # not loaded by SMTP processes

        svc = self.services
        return StoreBackend(svc.db, svc.keys, svc.hub, authenticator=self.mail.authenticator,
                            quota_defaults=self.mail.pipeline.quota, tokens=self.mail.tokens)

    @cached_property
    def web_app(self) -> Starlette:
        """The web application, built once and shared by the HTTP and HTTPS listeners."""
        from gateway.web.app import create_app  # not loaded by SMTP processes (memory per process)

        return create_app(self.services, self.mail)

    async def close(self) -> None:
        for item in reversed(self.running):
            with contextlib.suppress(Exception):
                await item.close()
        self.running.clear()


def reload_keys_now(svc: Services, reason: str) -> bool:
    """Re-read the master key file (blocking: call it in a thread). Keeps the old ring when the
    file is unusable or does not open every version the database uses (one log line)."""
    with svc.db.read() as session:
        return svc.keys.reload(session, reason=reason)


def on_sighup(gw: Gateway) -> None:
    """SIGHUP: re-read the master key file here and in every SMTP process."""
    log.info("SIGHUP: re-reading the master key file")
    if gw.smtp_processes is not None:
        gw.smtp_processes.send_signal(signal.SIGHUP)
    task = asyncio.get_running_loop().create_task(asyncio.to_thread(reload_keys_now, gw.services, "SIGHUP"))
    gw.background.add(task)
    task.add_done_callback(gw.background.discard)
