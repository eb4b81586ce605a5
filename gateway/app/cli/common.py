"""Helpers shared by the command-line modules: opening services, output, audit actor."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from gateway.accounts.patients import PatientExists
from gateway.accounts.pros import AlreadyExists, NotFound
from gateway.app.context import InitError, Location, locate, open_services
from gateway.operations.common import cli_actor
from gateway.operations.pros import check_new_password
from gateway.settings import ConfigError
from gateway.store.keyfile import MasterKeyFileError
from gateway.store.keys import KeyUnavailable
from gateway.store.opening import StoreUnavailable, store_errors
from gateway.store.services import Services
from routing.address import InvalidAddress
from routing.ins import InvalidINS

Handler = Callable[[argparse.Namespace], int]
Leaf = Callable[[Any, str, str, Handler], argparse.ArgumentParser]
Node = Callable[[str, str], Any]


class UserError(Exception):
    """Reported as ``gateway: error: <text>`` with exit status 1."""


_EXPECTED = (ConfigError, MasterKeyFileError, InitError, InvalidINS, InvalidAddress, AlreadyExists, NotFound,
             PatientExists, KeyUnavailable, StoreUnavailable)


def location(args: argparse.Namespace) -> Location:
    return locate(getattr(args, "config", None), getattr(args, "home", None))


@contextmanager
def translate_errors() -> Iterator[None]:
    try:
        yield
    except _EXPECTED as exc:
        raise UserError(str(exc)) from None


@contextmanager
def services(args: argparse.Namespace, *, migrate_schema: bool | None = None,
             create_store: bool = False) -> Iterator[Services]:
    """The opened services; a database that fails during the command is one line too."""
    with translate_errors():
        loc = location(args)
        if not loc.config.exists():
            raise UserError(
                f"{loc.config}: configuration file not found (create one with 'gateway init --home DIR', "
                "or pass --config FILE)"
            )
        svc = open_services(loc, migrate_schema=migrate_schema, create_store=create_store)
        try:
            with store_errors(svc.db.url, "database error", only_operational=True):
                yield svc
        finally:
            svc.close()


def actor() -> str:
    """The audit actor of the operator at the command line: ``admin:cli:<login name>``."""
    return cli_actor().audit_actor


def emit_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def emit_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        print("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, "") or "-")) for r in rows)) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        print("  ".join(str(r.get(c, "") if r.get(c) is not None else "-").ljust(widths[c]) for c in columns).rstrip())


def read_new_password(from_stdin: bool | None = None) -> str:
    """A new password: one line from standard input (``--password-stdin``, or when it is not a
    terminal), else typed twice; checked as every new password is (12 to 200 characters)."""
    if from_stdin or (from_stdin is None and not sys.stdin.isatty()):
        line = sys.stdin.readline()
        if not line:
            raise UserError("no password on standard input")
        password = line.rstrip("\r\n")
    else:
        password = getpass.getpass("new password: ")
        if getpass.getpass("again: ") != password:
            raise UserError("the two passwords differ")
    return check_new_password(password)


def print_enrolment(who: str, secret: str, uri: str, where: str) -> None:
    """The TOTP secret of a new console account, once: as text, as a URI and (on a terminal) a QR code."""
    print(f"{who} added; enrol this TOTP secret in an authenticator app:")
    print(f"  secret: {secret}")
    print(f"  uri:    {uri}")
    if sys.stdout.isatty():
        import segno

        segno.make(uri, error="m").terminal(compact=True)
    print(f"log in at /admin/login with the password and a 6-digit code{where}")
