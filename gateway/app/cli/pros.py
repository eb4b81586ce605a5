"""``gateway pro show|passwd|disable|enable|remove``: one professional account.

The operations are :mod:`gateway.operations.pros`, the same the admin console and the
JSON API call; each change is audited as ``admin:cli:<user>``.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from gateway.app.cli.common import UserError, emit_json, read_new_password, services
from gateway.operations import pros as ops
from gateway.operations.common import cli_actor

REMOVE_HELP = ("remove an account and destroy its mailbox: its data keys are shredded (nothing sealed for it "
               "can be read again, even from a backup) and its messages, folders and conversations deleted, "
               "in one transaction; its open sessions end; asks for --yes")


def register(pro: Any, leaf: Any) -> None:
    p = leaf(pro, "show", "show an account: state, name, last login, mailbox size (never a message)", cmd_show)
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = leaf(pro, "passwd", "set or reset an account's password: one line on standard input, or typed twice "
                            f"on a terminal ({ops.MIN_PASSWORD} characters at least); clears its login lockout",
             cmd_passwd)
    p.add_argument("address", metavar="ADDRESS")
    p = leaf(pro, "disable", "disable an account: SMTP AUTH and IMAP logins refused from the next attempt, "
                             "its open sessions end (IMAP * BYE within 5 s, SMTP 421 at the next MAIL FROM), "
                             "mail to it refused", cmd_status)
    p.add_argument("address", metavar="ADDRESS")
    p.set_defaults(status="disabled")
    p = leaf(pro, "enable", "enable a disabled account again", cmd_status)
    p.add_argument("address", metavar="ADDRESS")
    p.set_defaults(status="active")
    p = leaf(pro, "remove", REMOVE_HELP, cmd_remove)
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("--yes", action="store_true", help="confirm: the mailbox and its messages are destroyed for good")


def cmd_show(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.read() as session:
        info = ops.show(session, svc.keys, args.address)
    if args.json:
        emit_json(info)
    else:
        for key, value in info.items():
            print(f"{key + ':':28}{'-' if value is None else value}")
    return 0


def cmd_passwd(args: argparse.Namespace) -> int:
    address = ops.pro_address(args.address)  # a bad address is refused before any prompt
    hashed = ops.hash_new_password(read_new_password())
    with services(args) as svc, svc.db.write() as session:
        row = ops.set_password(session, svc.keys, cli_actor(), address, hashed, now=datetime.now(UTC))
    print(f"password of {row['address']} set; its failed-login lockout, if any, is cleared")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.write() as session:
        row = ops.set_status(session, cli_actor(), args.address, args.status, now=datetime.now(UTC))
    if args.status == "disabled":
        print(f"account {row['address']} disabled: new SMTP and IMAP logins are refused, its open sessions end "
              "(IMAP within 5 s, SMTP at the next MAIL FROM), mail to it is refused")
    else:
        print(f"account {row['address']} enabled")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    with services(args) as svc:
        if not args.yes:
            with svc.db.read() as session:
                info = ops.show(session, svc.keys, args.address)
            print(f"would remove {info['address']} and destroy its mailbox: {info['messages']} message(s) in "
                  f"{info['folders']} folder(s), {info['mailbox_bytes']} bytes; its data keys would be shredded, "
                  "so nothing of it can be read again, even from a backup")
            raise UserError("nothing removed: add --yes to confirm")
        with svc.db.write() as session:
            done = ops.remove(session, svc.keys, cli_actor(), args.address, now=datetime.now(UTC))
    print(f"account {done['address']} removed: {done['messages']} message(s) in {done['folders']} folder(s) "
          f"destroyed, {done['data_keys']} data key(s) shredded")
    return 0
