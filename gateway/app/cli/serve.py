"""``gateway serve``: every listener in one process, on the embedded default when unconfigured."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any

from gateway.app.cli.common import Leaf, UserError, location, services, translate_errors
from gateway.app.context import init_home
from gateway.app.logs import configure as configure_logging


def register(sub: Any, leaf: Leaf) -> None:
    p = leaf(sub, "serve", "run every listener (SMTP, IMAP, web) in one process", cmd_serve)
    p.add_argument("--hostname", default="mail.gateway.test",
                   help="host name used when creating the embedded default (default: %(default)s)")
    p.add_argument("--patient-domain", default="patients.gateway.test",
                   help="patient domain used when creating the embedded default (default: %(default)s)")
    w = leaf(sub, "smtp-process", "internal: one more SMTP process, started by 'gateway serve' when "
             "smtp.processes > 1; it accepts on listening sockets inherited from it", cmd_smtp_process)
    w.add_argument("--socket", action="append", default=[], metavar="LISTENER:FD",
                   help="an inherited listening socket (mx, submission or submissions); repeatable")
    w.add_argument("--notices", type=int, required=True, metavar="FD",
                   help="pipe on which to tell the serving process about deliveries and counters")


def _ignore_sighup_until_ready() -> None:
    """SIGHUP re-reads the master keys once serving (``gateway.app.gateway.on_sighup``); before
    that it must not end the process (its default action)."""
    with contextlib.suppress(ValueError, OSError):  # not the main thread (tests)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.app.server import run

    _ignore_sighup_until_ready()
    loc = location(args)
    if not loc.config.exists():
        if loc.explicit_config:
            raise UserError(f"{loc.config}: configuration file not found")
        with translate_errors():
            init_home(loc.home, hostname=args.hostname, patient_domain=args.patient_domain)
        print(f"first run: created the embedded default in {loc.home}/ (config, master key, development TLS, "
              "SQLite database)")
    with services(args) as svc:
        configure_logging(svc.settings.logging)
        try:
            asyncio.run(run(svc))
        except OSError as exc:
            raise UserError(f"cannot start listening: {exc.strerror or exc}") from None
    return 0


def cmd_smtp_process(args: argparse.Namespace) -> int:
    """The same start as ``python -m gateway ... smtp-process`` (:func:`gateway.app.smtp_process.main`)."""
    from gateway.app.smtp_process import main

    argv = [word for name in ("config", "home") if getattr(args, name, None)
            for word in (f"--{name}", getattr(args, name))]
    argv += ["smtp-process", "--notices", str(args.notices)]
    argv += [word for spec in args.socket for word in ("--socket", spec)]
    return main(argv)
