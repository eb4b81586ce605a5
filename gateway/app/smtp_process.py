"""One more SMTP process (``gateway smtp-process``, started by ``gateway serve`` when
``smtp.processes`` > 1): the SMTP listeners only, on listening sockets inherited from the
serving process, with counts and deliveries reported to it on the notices pipe
(:mod:`gateway.delivery.smtp_processes`). It imports neither the web nor the IMAP modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket

from gateway import metrics
from gateway.app.gateway import Gateway, on_sighup
from gateway.app.memory import freeze_startup_objects, return_large_blocks
from gateway.delivery.smtp_listener import start_smtp_listener
from gateway.delivery.smtp_processes import counter_notice, mailbox_notice, notice_writer
from gateway.store.services import Services

log = logging.getLogger("gateway.smtp_processes")


async def serve_smtp_process(svc: Services, sockets: dict[str, list[int]], notices: int) -> None:
    """One more SMTP process (``gateway smtp-process``, ``gateway.delivery.smtp_processes``):
    accept on the inherited sockets until standard input ends or a signal arrives."""
    return_large_blocks()
    loop = asyncio.get_running_loop()
    send = notice_writer(notices)
    svc.hub.bind(loop)
    svc.hub.forward = lambda mailbox_id: send(mailbox_notice(mailbox_id))
    metrics.forward = lambda name, labels: send(counter_notice(name, labels))
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    def on_stdin() -> None:
        try:
            data = os.read(0, 1024)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            stop.set()

    os.set_blocking(0, False)
    loop.add_reader(0, on_stdin)
    gw = Gateway(svc)
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, on_sighup, gw)
    try:
        if "mx" in sockets:  # the trust list before the first connection (operators' allowances)
            await asyncio.to_thread(gw.mail.directory.snapshot)
        for name, fds in sockets.items():
            for fd in fds:
                gw.running.append(await start_smtp_listener(svc.settings, gw.mail, gw.budgets, name,
                                                             socket.socket(fileno=fd)))
        freeze_startup_objects()
        log.info("SMTP process accepting", extra={"pid": os.getpid()})
        await stop.wait()
    finally:
        await gw.close()
