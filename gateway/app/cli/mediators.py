"""``gateway mediator add|list|disable|enable|token`` and ``gateway patient new-code`` (issue 14).

Mediators (France Services desks, "médiateurs numériques") log in to the admin console with a
password and a TOTP code, like administrators, and may only help a patient get in: look a
space up by INS, see its state, issue a new activation code. ``patient new-code`` is the same
operation for operators (``gateway.operations.recovery.issue_code``).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

from gateway.accounts import mediators
from gateway.accounts.admins import InvalidAdminName, check_name
from gateway.accounts.patients import by_ins
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
from gateway.operations.recovery import CodeRefused, issue_code
from gateway.store import audit
from routing.ins import mask_ins, normalise_ins


def register(node: Node, leaf: Leaf) -> None:
    group = node("mediator", "mediators (France Services desks): console and API limited to helping a patient get in")
    p = leaf(group, "add", "add a mediator; prints the TOTP secret to enrol in an authenticator app", cmd_add)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--organisation", metavar="TEXT", help="desk or organisation (e.g. 'France Services Lyon 8')")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p = leaf(group, "list", "list mediators", cmd_list)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = leaf(group, "disable", "disable a mediator: ends its console sessions and revokes its API tokens",
             cmd_disable)
    p.add_argument("name", metavar="NAME")
    p = leaf(group, "enable", "enable a disabled mediator again (new API tokens are needed)", cmd_enable)
    p.add_argument("name", metavar="NAME")
    p = leaf(group, "token", "create an API bearer token acting as this mediator (shown once)", cmd_token)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--label", metavar="TEXT", help="what the token is for")


def register_patient(patient: Any, leaf: Leaf) -> None:
    p = leaf(patient, "new-code", "issue a new activation code for a provisioned or open space (forgotten "
             "password, lost phone): printed once, or mailed with --send", cmd_new_code)
    p.add_argument("ins", metavar="INS")
    p.add_argument("--send", action="store_true",
                   help="mail the code to the personal address on file instead of printing it")


def _name(value: str) -> str:
    try:
        return check_name(value)
    except InvalidAdminName as exc:
        raise UserError(str(exc).replace("admin name", "mediator name")) from None


def cmd_add(args: argparse.Namespace) -> int:
    name = _name(args.name)
    organisation = (args.organisation or "").strip()[:200] or None
    password = read_new_password(args.password_stdin)
    with services(args) as svc, svc.db.write() as session, translate_errors():
        created = mediators.add_mediator(session, svc.keys, name, password, organisation=organisation,
                                         now=datetime.now(UTC))
        audit.record(session, actor=actor(), action="mediator.add", subject_ref=f"mediator:{name}",
                     details={"organisation": organisation})
    print_enrolment(f"mediator {name}", created.totp_secret, created.provisioning_uri(),
                    "; only /admin/mediation opens")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.read() as session:
        rows = [{"name": m.name, "organisation": m.organisation, "status": m.status,
                 "created_at": m.created_at.isoformat(),
                 "last_login_at": m.last_login_at.isoformat() if m.last_login_at else None}
                for m in mediators.list_mediators(session)]
    if args.json:
        emit_json(rows)
    else:
        emit_table(rows, ["name", "organisation", "status", "last_login_at"])
    return 0


def _set_status(args: argparse.Namespace, status: str) -> int:
    name = _name(args.name)
    with services(args) as svc, svc.db.write() as session, translate_errors():
        current = mediators.by_name(session, name)
        if current is not None and current.status == status:
            print(f"mediator {name} is already {status}")
            return 0
        mediators.set_status(session, name, status, now=datetime.now(UTC))
        audit.record(session, actor=actor(), action=f"mediator.{'disable' if status == 'disabled' else 'enable'}",
                     subject_ref=f"mediator:{name}")
    print(f"mediator {name} {status}" + (": sessions ended, API tokens revoked" if status == "disabled" else ""))
    return 0


def cmd_disable(args: argparse.Namespace) -> int:
    return _set_status(args, "disabled")


def cmd_enable(args: argparse.Namespace) -> int:
    return _set_status(args, "active")


def cmd_token(args: argparse.Namespace) -> int:
    name = _name(args.name)
    with services(args) as svc, svc.db.write() as session, translate_errors():
        token = mediators.create_token(session, name, label=args.label, now=datetime.now(UTC))
        audit.record(session, actor=actor(), action="mediator.token.create", subject_ref=f"mediator:{name}",
                     details={"label": args.label})
    print(token)
    print(f"(API token for mediator {name}; shown once, stored hashed. It opens /admin/api/mediation/* only)",
          file=sys.stderr)
    return 0


def cmd_new_code(args: argparse.Namespace) -> int:
    with translate_errors():
        ins = normalise_ins(args.ins)
    with services(args) as svc, svc.db.write() as session:
        patient = by_ins(session, svc.keys, ins)
        if patient is None:
            raise UserError(f"no patient space for {mask_ins(ins)}")
        try:
            issued = issue_code(session, svc.keys, patient, svc.settings, delivery="mail" if args.send else "show",
                                actor=actor(), via="cli", peer=None, now=datetime.now(UTC))
        except CodeRefused as exc:
            hint = " (print it without --send and hand it over in person)" if exc.reason == "no_email" else ""
            raise UserError(f"{mask_ins(ins)}: {exc}{hint}") from None
    until = issued.expires_at.isoformat(timespec="minutes")
    if issued.mailed:
        print(f"new activation code for {mask_ins(ins)} ({issued.state}) queued for the personal address on file; "
              f"valid until {until}")
    else:
        print(f"new activation code for {mask_ins(ins)} ({issued.state}): {issued.code} (valid until {until}; "
              "shown once, the previous code no longer works)")
    return 0
