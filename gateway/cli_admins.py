"""``gateway admin add|token|list``: administrators of the web console and JSON API."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime

from sqlalchemy import select

from gateway.cli_common import Leaf, Node, UserError, actor, emit_json, emit_table, services, translate_errors
from gateway.store import audit
from gateway.store.admins import InvalidAdminName, add_admin, check_name, create_token
from gateway.store.models import AdminAccount

MIN_PASSWORD = 12


def register(node: Node, leaf: Leaf) -> None:
    admin = node("admin", "administrators of the web console (/admin) and the JSON API (/admin/api)")
    p = leaf(admin, "add", "add an administrator; prints the TOTP secret to enrol in an authenticator app",
             cmd_admin_add)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p = leaf(admin, "token", "create an API bearer token acting as this administrator (shown once)",
             cmd_admin_token)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--label", metavar="TEXT", help="what the token is for (e.g. monitoring)")
    p = leaf(admin, "list", "list administrators", cmd_admin_list)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _name(value: str) -> str:
    try:
        return check_name(value)
    except InvalidAdminName as exc:
        raise UserError(str(exc)) from None


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise UserError("the two passwords differ")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password too short (at least {MIN_PASSWORD} characters)")
    return password


def cmd_admin_add(args: argparse.Namespace) -> int:
    name = _name(args.name)
    password = _password(args.password_stdin)
    with services(args) as svc, svc.db.write() as session, translate_errors():
        created = add_admin(session, svc.keys, name, password, now=datetime.now(UTC))
        audit.record(session, actor=actor(), action="admin.add", subject_ref=f"admin:{name}")
    uri = created.provisioning_uri()
    print(f"administrator {name} added; enrol this TOTP secret in an authenticator app:")
    print(f"  secret: {created.totp_secret}")
    print(f"  uri:    {uri}")
    if sys.stdout.isatty():
        import segno

        segno.make(uri, error="m").terminal(compact=True)
    print("log in at /admin/login with the password and a 6-digit code")
    return 0


def cmd_admin_token(args: argparse.Namespace) -> int:
    name = _name(args.name)
    with services(args) as svc, svc.db.write() as session, translate_errors():
        token = create_token(session, name, label=args.label, now=datetime.now(UTC))
        audit.record(session, actor=actor(), action="admin.token.create", subject_ref=f"admin:{name}",
                     details={"label": args.label})
    print(token)
    print(f"(API token for {name}; shown once, stored hashed. Use: Authorization: Bearer <token>)",
          file=sys.stderr)
    return 0


def cmd_admin_list(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.read() as session:
        rows = [{"name": a.name, "status": a.status, "created_at": a.created_at.isoformat(),
                 "last_login_at": a.last_login_at.isoformat() if a.last_login_at else None}
                for a in session.execute(select(AdminAccount).order_by(AdminAccount.name)).scalars()]
    if args.json:
        emit_json(rows)
    else:
        emit_table(rows, ["name", "status", "last_login_at"])
    return 0
