"""``gateway serve``: every listener in one process, on the embedded default when unconfigured."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from gateway.cli_common import Leaf, UserError, location, services, translate_errors
from gateway.context import init_home
from gateway.logs import configure as configure_logging


def register(sub: Any, leaf: Leaf) -> None:
    p = leaf(sub, "serve", "run every listener (SMTP, IMAP, web) in one process", cmd_serve)
    p.add_argument("--hostname", default="mail.gateway.test",
                   help="host name used when creating the embedded default (default: %(default)s)")
    p.add_argument("--patient-domain", default="patients.gateway.test",
                   help="patient domain used when creating the embedded default (default: %(default)s)")


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.server import run

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
