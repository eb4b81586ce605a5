"""``gateway init``, ``db``, ``pro``, ``patient`` and ``audit`` commands (``keys``: :mod:`gateway.app.cli.keys`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.accounts.patients import by_ins, provision
from gateway.accounts.pros import add_pro, hosted_domain
from gateway.app.cli import imports, mediators, patients, pros
from gateway.app.cli.common import (
    Leaf,
    Node,
    UserError,
    actor,
    emit_json,
    emit_table,
    services,
    translate_errors,
)
from gateway.app.config import load_settings
from gateway.app.context import DEFAULT_HOME, init_home
from gateway.app.tryit import gateway_command
from gateway.store import audit, migrate
from gateway.store.models import ProAccount
from gateway.store.opening import display_url
from routing.address import parse_address
from routing.ins import mask_ins, normalise_ins

__all__ = ["UserError", "register"]


def register(node: Node, leaf: Leaf) -> None:
    db = node("db", "database schema")
    leaf(db, "upgrade", "apply pending schema migrations (creates an SQLite database file that is missing)",
         cmd_db_upgrade)
    leaf(db, "status", "show the schema revision", cmd_db_status)

    pro = node("pro", "professional accounts hosted here")
    p = leaf(pro, "add", "add a professional account on a hosted domain", cmd_pro_add)
    p.add_argument("address")
    p.add_argument("--name", metavar="N", help="display name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--accepts-patient-initiated", action="store_true",
                   help="patients may write first (pharmacies)")
    p = leaf(pro, "list", "list professional accounts", cmd_pro_list)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    pros.register(pro, leaf)

    patient = node("patient", "patient spaces")
    p = leaf(patient, "add", "provision a patient space and print its activation code", cmd_patient_add)
    p.add_argument("ins", metavar="INS")
    p.add_argument("--email", metavar="E", help="personal e-mail for content-free notifications")
    p.add_argument("--open", action="store_true", help="open the mailbox at once (no activation needed for mail)")
    p = leaf(patient, "show", "show a patient space's state (never its messages)", cmd_patient_show)
    p.add_argument("ins", metavar="INS")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    imports.register_patient(patient, leaf)
    mediators.register_patient(patient, leaf)
    patients.register(patient, leaf)

    aud = node("audit", "the audit trail")
    leaf(aud, "verify", "check the audit trail's hash chain", cmd_audit_verify)


def register_init(sub: Any, leaf: Leaf) -> None:
    p = leaf(sub, "init", "create a state folder: config, master key, development TLS, database", cmd_init)
    p.add_argument("--hostname", default="mail.gateway.test", help="server host name (default: %(default)s)")
    p.add_argument("--patient-domain", default="patients.gateway.test",
                   help="domain of patient addresses (default: %(default)s)")


def cmd_init(args: argparse.Namespace) -> int:
    home = Path(getattr(args, "home", None) or DEFAULT_HOME)
    with translate_errors():
        config = init_home(home, hostname=args.hostname, patient_domain=args.patient_domain)
        store = display_url(load_settings(config).database_url)
    print(f"created {home}/ (0700) with {config.name}, keys/master.keys (0600), tls/ (development CA) "
          f"and the migrated database {store}")
    print(f"start it with: {gateway_command()} serve --home {shlex.quote(str(home))}")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    with services(args, migrate_schema=True, create_store=True) as svc:
        print(f"database at revision {migrate.current_revision(svc.db.engine)} (head)")
    return 0


def cmd_db_status(args: argparse.Namespace) -> int:
    with services(args, migrate_schema=False) as svc:
        current, head = migrate.current_revision(svc.db.engine), migrate.head_revision()
    print(f"database revision: {current or 'none'}; code expects: {head}")
    return 0 if current == head else 1


def _read_password() -> str:
    line = sys.stdin.readline().rstrip("\r\n")
    if len(line) < 12:
        raise UserError("password too short (at least 12 characters)")
    return line


def cmd_pro_add(args: argparse.Namespace) -> int:
    with translate_errors():
        address = parse_address(args.address)
    password = _read_password() if args.password_stdin else None
    with services(args) as svc, svc.db.write() as session, translate_errors():
        domain = hosted_domain(session, address.domain)
        if domain is None:
            raise UserError(f"{address.domain} is not a hosted domain (add it with "
                            f"'gateway domain hosted add {address.domain}')")
        add_pro(session, svc.keys, address.key, domain, name=args.name, password=password,
                accepts_patient_initiated=args.accepts_patient_initiated)
        audit.record(session, actor=actor(), action="pro.add", subject_ref=f"pro:{address.key}",
                     details={"accepts_patient_initiated": args.accepts_patient_initiated})
    print(f"account {address.key} added" + ("" if password else " (no password yet: it cannot log in)"))
    return 0


def cmd_pro_list(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.read() as session:
        rows = [{"address": p.address, "status": p.status, "accepts_patient_initiated": p.accepts_patient_initiated,
                 "created_at": p.created_at.isoformat(),
                 "last_login_at": p.last_login_at.isoformat() if p.last_login_at else None}
                for p in session.execute(select(ProAccount).order_by(ProAccount.address)).scalars()]
    if args.json:
        emit_json(rows)
    else:
        emit_table(rows, ["address", "status", "accepts_patient_initiated", "last_login_at"])
    return 0


def _ins(value: str) -> str:
    with translate_errors():
        return normalise_ins(value)


def cmd_patient_add(args: argparse.Namespace) -> int:
    ins = _ins(args.ins)
    email = None
    if args.email:
        with translate_errors():
            email = str(parse_address(args.email))
    with services(args) as svc, svc.db.write() as session, translate_errors():
        cfg = svc.settings.patients
        done = provision(session, svc.keys, ins, email=email, now=datetime.now(UTC),
                         opposition_window=timedelta(days=cfg.opposition_window_days),
                         code_validity=timedelta(days=cfg.activation_code_validity_days), open_now=args.open)
        audit.record(session, actor=actor(), action="patient.provision",
                     subject_ref=f"patient:{done.patient.id}", details={"open": args.open})
        address = f"{ins}@{svc.settings.domains.patient_domain}"
    print(f"patient space created for {mask_ins(ins)}: {address} ({done.patient.state})")
    print(f"activation code: {done.activation_code} (valid {cfg.activation_code_validity_days} days)")
    return 0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def cmd_patient_show(args: argparse.Namespace) -> int:
    ins = _ins(args.ins)
    with services(args) as svc, svc.db.write() as session:
        patient = by_ins(session, ins)
        if patient is None:
            raise UserError("no patient space for this INS")
        info = {
            "ins": patient.ins, "address": f"{patient.ins}@{svc.settings.domains.patient_domain}",
            "state": patient.state, "provisioned_at": _iso(patient.provisioned_at),
            "opposition_deadline": _iso(patient.opposition_deadline), "opened_at": _iso(patient.opened_at),
            "opposed_at": _iso(patient.opposed_at), "closed_at": _iso(patient.closed_at),
            "purge_after": _iso(patient.purge_after), "activated": patient.activated_at is not None,
            "activation_expires_at": _iso(patient.activation_expires_at),
            "personal_email_set": patient.email_sealed is not None,
            "notifications_enabled": patient.notifications_enabled,
        }
        audit.record(session, actor=actor(), action="patient.show", subject_ref=f"patient:{patient.id}")
    if args.json:
        emit_json(info)
    else:
        for key, value in info.items():
            print(f"{key + ':':24}{'-' if value is None else value}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.read() as session:
        report = audit.verify(session)
    if report.ok:
        print(f"audit trail intact: {report.entries} entries")
        return 0
    print(f"audit trail BROKEN at entry #{report.first_bad_id}: {report.problem} "
          f"({report.entries} entries verified before it)", file=sys.stderr)
    return 1
