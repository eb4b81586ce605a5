"""One more SMTP process (``gateway smtp-process``, started by ``gateway serve`` when
``smtp.processes`` > 1): the SMTP listeners only, on listening sockets inherited from the
serving process, with counts and deliveries reported to it on the notices pipe
(:mod:`gateway.delivery.smtp_processes`). It imports neither the web nor the IMAP modules.

:func:`main` is its start when the serving process runs ``python -m gateway ... smtp-process``
(``gateway/__main__.py`` sends that command here): the same arguments and errors as the
command line's ``smtp-process``, without importing the command line (every other command's
modules) nor Alembic, since the serving process checked or migrated the schema before starting
it (issue 22: ~12 MiB less resident per SMTP process, measured with ``RssAnon``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

from gateway import metrics
from gateway.app.gateway import Gateway, on_sighup
from gateway.app.memory import freeze_startup_objects, return_large_blocks
from gateway.delivery.smtp_listener import start_smtp_listener
from gateway.delivery.smtp_processes import counter_notice, mailbox_notice, notice_writer
from gateway.store.keyfile import MasterKeyFileError
from gateway.store.keys import KeyUnavailable
from gateway.store.opening import StoreUnavailable
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


COMMAND = "smtp-process"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway")
    parser.add_argument("--config", metavar="FILE")
    parser.add_argument("--home", metavar="DIR")
    parser.add_argument("command", choices=(COMMAND,))
    parser.add_argument("--socket", action="append", default=[], metavar="LISTENER:FD")
    parser.add_argument("--notices", type=int, required=True, metavar="FD")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``gateway [--config FILE] smtp-process --socket LISTENER:FD... --notices FD``; errors are
    one line ``gateway: error: ...`` and exit status 1, as the command line's."""
    from gateway.app.context import locate, open_services
    from gateway.app.logs import configure as configure_logging
    from gateway.delivery.smtp_processes import parse_sockets
    from gateway.settings import ConfigError

    args = _parser().parse_args(argv)
    with contextlib.suppress(ValueError, OSError):  # SIGHUP re-reads the keys once serving, not before
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        sockets = parse_sockets(args.socket)
        if not sockets:
            raise ValueError("smtp-process needs at least one --socket (it is started by 'gateway serve')")
        location = locate(args.config, args.home)
        if not location.config.exists():
            raise ValueError(f"{location.config}: configuration file not found")
        svc = open_services(location, migrate_schema=False, check_schema=False)
    except (ValueError, ConfigError, MasterKeyFileError, KeyUnavailable, StoreUnavailable) as exc:
        print(f"gateway: error: {exc}", file=sys.stderr)
        return 1
    try:
        configure_logging(svc.settings.logging)
        asyncio.run(serve_smtp_process(svc, sockets, args.notices))
    except OSError as exc:
        print(f"gateway: error: cannot accept on the inherited sockets: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        svc.close()
    return 0
