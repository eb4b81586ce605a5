"""``gateway admin add|token|list|disable|enable|tokens|revoke``: administrators of the console and API.

``list``, ``disable``, ``enable``, ``tokens`` and ``revoke`` are :mod:`gateway.operations.admins`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from gateway.accounts.admins import InvalidAdminName, add_admin, check_name, create_token
from gateway.app.cli.common import (
    Leaf,
    Node,
    UserError,
    actor,
    emit_json,
    emit_table,
    print_enrolment,
    read_new_password,
    services,
    translate_errors,
)
from gateway.operations import admins as ops
from gateway.operations.common import cli_actor
from gateway.store import audit


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
    p = leaf(admin, "list", "list administrators (with their live API tokens and console sessions)", cmd_admin_list)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = leaf(admin, "disable", "disable an administrator: console sessions end at once, API tokens stop working "
                               "(until enabled again)", cmd_admin_status)
    p.add_argument("name", metavar="NAME")
    p.set_defaults(status="disabled")
    p = leaf(admin, "enable", "enable a disabled administrator (their unrevoked API tokens work again)",
             cmd_admin_status)
    p.add_argument("name", metavar="NAME")
    p.set_defaults(status="active")
    p = leaf(admin, "tokens", "list an administrator's API tokens (id, label, dates; never the secret)",
             cmd_admin_tokens)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = leaf(admin, "revoke", "revoke an API token for good", cmd_admin_revoke)
    p.add_argument("token_id", metavar="TOKEN-ID", type=int, help="the token's id (from 'gateway admin tokens NAME')")


def _name(value: str) -> str:
    try:
        return check_name(value)
    except InvalidAdminName as exc:
        raise UserError(str(exc)) from None


def cmd_admin_add(args: argparse.Namespace) -> int:
    name = _name(args.name)
    password = read_new_password(args.password_stdin)
    with services(args) as svc, svc.db.write() as session, translate_errors():
        created = add_admin(session, svc.keys, name, password, now=datetime.now(UTC))
        audit.record(session, actor=actor(), action="admin.add", subject_ref=f"admin:{name}")
    print_enrolment(f"administrator {name}", created.totp_secret, created.provisioning_uri(), "")
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
        rows = ops.list_admins(session, now=datetime.now(UTC))
    if args.json:
        emit_json(rows)
    else:
        emit_table(rows, ["name", "status", "last_login_at", "api_tokens", "console_sessions"])
    return 0


def cmd_admin_status(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.write() as session:
        done = ops.set_status(session, cli_actor(), args.name, args.status, now=datetime.now(UTC))
    if args.status == "disabled":
        print(f"administrator {done['name']} disabled: {done['sessions_ended']} console session(s) ended, "
              "API tokens refused until enabled again")
    else:
        print(f"administrator {done['name']} enabled")
    return 0


def cmd_admin_tokens(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.read() as session:
        rows = ops.tokens(session, args.name)
    if args.json:
        emit_json(rows)
    else:
        emit_table(rows, ["id", "label", "created_at", "last_used_at", "revoked_at"])
    return 0


def cmd_admin_revoke(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.write() as session:
        done = ops.revoke(session, cli_actor(), args.token_id, now=datetime.now(UTC))
    print(f"API token {done['id']} of {done['admin']} ({done['label'] or 'no label'}) revoked")
    return 0
