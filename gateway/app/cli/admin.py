"""``gateway init``, ``db``, ``pro``, ``patient`` and ``audit`` commands (``keys``: :mod:`gateway.app.cli.keys`;
``audit``: :mod:`gateway.app.cli.audit`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.app.cli import audit, identities, imports, insdb, mediators, patients, pros
from gateway.app.cli.common import Leaf, Node, UserError, emit_json, emit_table, services, translate_errors
from gateway.app.config import load_settings
from gateway.app.context import DEFAULT_HOME, init_home
from gateway.app.tryit import gateway_command
from gateway.operations import people
from gateway.operations.common import cli_actor
from gateway.store import citus, migrate
from gateway.store.opening import display_url
from routing.ins import mask_ins

__all__ = ["UserError", "register"]



def register(node: Node, leaf: Leaf) -> None:
    db = node("db", "database schema")
    leaf(db, "upgrade", "apply pending schema migrations (creates an SQLite database file that is missing)",
         cmd_db_upgrade)
    leaf(db, "status", "show the schema revision", cmd_db_status)
    p = leaf(db, "distribute", "on a Citus coordinator, after 'db upgrade': make every table a reference or "
             "distributed table as gateway/store/distribution.py maps it (idempotent)", cmd_db_distribute)
    p.add_argument("--dry-run", action="store_true", help="show what would be done, do nothing")
    insdb.register(db, leaf)

    pro = node("pro", "professional accounts hosted here")
    p = leaf(pro, "add", "add a professional account on a hosted domain", cmd_pro_add)
    p.add_argument("address")
    p.add_argument("--name", metavar="N", help="display name")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p.add_argument("--accepts-patient-initiated", action="store_true",
                   help="patients may write first (pharmacies)")
    p.add_argument("--type", choices=("personal", "organisational", "application"), default="personal",
                   help="personal (one professional, the default), organisational (a service: granted to "
                        "professionals) or application (software: opened by client certificates)")
    p = leaf(pro, "list", "list professional accounts", cmd_pro_list)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    pros.register(pro, leaf)
    identities.register(pro, leaf)

    patient = node("patient", "patient spaces")
    p = leaf(patient, "add", "provision a patient space and print its activation code", cmd_patient_add)
    p.add_argument("ins", metavar="INS")
    p.add_argument("--email", metavar="E", help="personal e-mail for content-free notifications")
    p.add_argument("--open", action="store_true", help="open the mailbox at once (no activation needed for mail)")
    p = leaf(patient, "show", "show a patient space's state, dates and access history, as the console's lookup "
                              "(audited; never its messages)", cmd_patient_show)
    p.add_argument("ins", metavar="INS")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    imports.register_patient(patient, leaf)
    mediators.register_patient(patient, leaf)
    patients.register(patient, leaf)

    audit.register(node("audit", "the audit trail: verification, retention, sealing of patient links"), leaf)


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


def cmd_db_distribute(args: argparse.Namespace) -> int:
    """Issue 23: refuses (exit status 2) on SQLite or a PostgreSQL without Citus; a schema that
    breaks Citus's rules is listed, nothing done (exit status 1)."""
    with services(args, migrate_schema=False) as svc:
        engine = svc.db.engine
        try:
            version = citus.citus_version(engine)
        except citus.NotCitus as exc:
            print(f"gateway: error: db distribute: {exc}", file=sys.stderr)
            return 2
        try:
            if args.dry_run:
                steps = citus.plan(engine)
            else:
                print(f"Citus {version} coordinator at {display_url(svc.db.url)}", flush=True)
                steps = citus.distribute(engine, report=lambda s: print(f"{s.table}: {s.action}", flush=True))
        except citus.CannotDistribute as exc:
            raise UserError(str(exc)) from None
    if args.dry_run:
        for step in steps:
            print(f"{step.table}: {step.action}")
    return 0


def cmd_pro_add(args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
    data = {"address": args.address, "name": args.name, "password": password,
            "accepts_patient_initiated": args.accepts_patient_initiated, "type": args.type}
    with services(args) as svc, svc.db.write() as session:
        done = people.add_professional(session, svc.keys, cli_actor(), data, now=datetime.now(UTC))
    print(f"account {done['address']} added ({done['type']})"
          + ("" if password else " (no password yet: it cannot log in)"))
    return 0


def cmd_pro_list(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.read() as session:
        rows = people.list_pros(session)
    if args.json:
        emit_json(rows)
    else:
        emit_table(rows, ["address", "type", "status", "accepts_patient_initiated", "last_login_at"])
    return 0


def cmd_patient_add(args: argparse.Namespace) -> int:
    data = {"ins": args.ins, "email": args.email, "open": args.open}
    with services(args) as svc, svc.db.write() as session:
        done = people.provision_patient(session, svc.keys, cli_actor(), data, svc.settings, now=datetime.now(UTC))
        validity = svc.settings.patients.activation_code_validity_days
    print(f"patient space created for {mask_ins(done['ins'])}: {done['address']} ({done['state']})")
    print(f"activation code: {done['activation_code']} (valid {validity} days)")
    return 0


def cmd_patient_show(args: argparse.Namespace) -> int:
    """The console's patient lookup: state, dates and access history (never a message), audited."""
    with services(args) as svc, svc.db.write() as session:
        info = people.lookup(session, svc.keys, cli_actor(), args.ins, svc.settings, now=datetime.now(UTC))
    if args.json:
        emit_json(info)
        return 0
    history = info.pop("history")
    for key, value in info.items():
        print(f"{key + ':':24}{'-' if value is None else value}")
    print(f"{'history:':24}{len(history)} entries, newest first")
    for entry in history:
        peer = f"  {entry['peer']}" if entry["peer"] else ""
        shredded = "  [shredded: the space is purged]" if entry.get("shredded") else ""
        print(f"  {entry['at']}  {entry['action']:28} {entry['actor']}{peer}{shredded}")
    return 0
