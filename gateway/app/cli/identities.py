"""``gateway pro identity|grant|revoke|cert|bindings|password-login``: what opens a
professional mailbox besides its password (issue 19).

A personal mailbox takes one professional identity (the identity provider's subject, Pro
Santé Connect's ``SubjectNameID``); an organisational mailbox is granted to personal ones; an
application mailbox takes client certificates (PEM files). The operations are
:mod:`gateway.operations.identities`, the same the admin console and the JSON API call; each
change is audited as ``admin:cli:<user>``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.app.cli.common import Leaf, UserError, emit_json, services
from gateway.operations import identities as ops
from gateway.operations import pros
from gateway.operations.common import cli_actor, flag


def register(pro: Any, leaf: Leaf) -> None:
    group = pro.add_parser("identity", help="bind a professional identity (the identity provider's subject) "
                                            "to a personal mailbox")
    sub = group.add_subparsers(dest="identity_command", metavar="SUBCOMMAND", required=True)
    for name, help_ in (("add", "bind SUBJECT (e.g. a Pro Santé Connect SubjectNameID) to the personal mailbox "
                                "ADDRESS; a subject opens one personal mailbox"),
                        ("remove", "unbind SUBJECT from ADDRESS")):
        p = leaf(sub, name, help_, cmd_identity)
        p.add_argument("address", metavar="ADDRESS")
        p.add_argument("subject", metavar="SUBJECT")
        p.set_defaults(change=name)
    for name, help_ in (("grant", "let the professional of the personal mailbox PRO_ADDRESS open the "
                                  "organisational mailbox ORG_ADDRESS"),
                        ("revoke", "take the organisational mailbox ORG_ADDRESS back from PRO_ADDRESS")):
        p = leaf(pro, name, help_, cmd_grant)
        p.add_argument("org", metavar="ORG_ADDRESS")
        p.add_argument("pro", metavar="PRO_ADDRESS")
        p.set_defaults(change=name)
    group = pro.add_parser("cert", help="client certificates that open an application mailbox (SASL EXTERNAL)")
    sub = group.add_subparsers(dest="cert_command", metavar="SUBCOMMAND", required=True)
    p = leaf(sub, "add", "bind the certificate in CERT.pem (PEM or DER) to the application mailbox ADDRESS",
             cmd_cert)
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("cert", metavar="CERT.pem")
    p.set_defaults(change="add")
    p = leaf(sub, "remove", "unbind a certificate: CERT.pem, or its SHA-256 fingerprint", cmd_cert)
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("cert", metavar="CERT.pem|SHA256")
    p.set_defaults(change="remove")
    p = leaf(pro, "bindings", "show a mailbox's type, identity, grants and certificates", cmd_bindings)
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = leaf(pro, "password-login", "allow (yes) or refuse (no) password logins for ADDRESS; [auth] "
                                    "password_login = false refuses them for every account", cmd_password_login)
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("allowed", metavar="yes|no")


def _print(info: dict[str, Any]) -> None:
    print(f"{'address:':16}{info['address']} ({info['type']}, {info['status']})")
    print(f"{'password login:':16}{'allowed' if info['password_login'] else 'refused'}")
    if info["type"] == "personal":
        print(f"{'identity:':16}{info['identity'] or '-'}")
        print(f"{'granted:':16}{', '.join(info['granted']) or '-'}")
    elif info["type"] == "organisational":
        print(f"{'granted to:':16}{', '.join(info['grantees']) or '-'}")
    else:
        print(f"{'certificates:':16}{len(info['certificates'])}")
        for cert in info["certificates"]:
            print(f"  {cert['fingerprint']}  {cert['subject']}  (issuer {cert['issuer']}, until {cert['not_after']})")


def cmd_identity(args: argparse.Namespace) -> int:
    change = ops.add_identity if args.change == "add" else ops.remove_identity
    with services(args) as svc, svc.db.write() as session:
        info = change(session, cli_actor(), args.address, args.subject, now=datetime.now(UTC))
    _print(info)
    return 0


def cmd_grant(args: argparse.Namespace) -> int:
    change = ops.grant if args.change == "grant" else ops.revoke
    with services(args) as svc, svc.db.write() as session:
        info = change(session, cli_actor(), args.org, args.pro, now=datetime.now(UTC))
    _print(info)
    return 0


def cmd_cert(args: argparse.Namespace) -> int:
    path = Path(args.cert)
    if args.change == "remove" and not path.exists():
        data: bytes | str = args.cert  # a fingerprint
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {args.cert}: {exc.strerror}") from None
    change = ops.add_certificate if args.change == "add" else ops.remove_certificate
    with services(args) as svc, svc.db.write() as session:
        info = change(session, cli_actor(), args.address, data, now=datetime.now(UTC))
    _print(info)
    return 0


def cmd_bindings(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.read() as session:
        info = ops.bindings(session, args.address)
    emit_json(info) if args.json else _print(info)
    return 0


def cmd_password_login(args: argparse.Namespace) -> int:
    allowed = flag(args.allowed, "yes|no")
    with services(args) as svc, svc.db.write() as session:
        info = pros.set_password_login(session, cli_actor(), args.address, allowed, now=datetime.now(UTC))
    print(f"password logins {'allowed' if info['password_login'] else 'refused'} for {info['address']}")
    return 0
