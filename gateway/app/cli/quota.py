"""``gateway quota show|set``: a mailbox's quota (RFC 9208 STORAGE and MESSAGE; issue 18).

The operations are :mod:`gateway.operations.quota`, the same the admin console and the
JSON API call; a change is audited as ``admin:cli:<user>`` (``quota.set``). The mailbox is
a professional's address or a patient's INS.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from gateway.app.cli.common import Leaf, Node, emit_json, services
from gateway.mailstore.quota import QuotaDefaults
from gateway.operations import quota as ops
from gateway.operations.common import cli_actor
from gateway.settings import Settings

WHO = "a professional's address, or a patient's INS"


def register(node: Node, leaf: Leaf) -> None:
    group = node("quota", "a mailbox's quota: STORAGE (KiB of stored messages) and MESSAGE (count), RFC 9208")
    p = leaf(group, "show", "show a mailbox's limits in force, its own values, the defaults and its usage", cmd_show)
    p.add_argument("who", metavar="MAILBOX", help=WHO)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = leaf(group, "set", "set a mailbox's limits: a number (0: no limit) or 'default' (the configured "
                           "[quota] default); a mailbox over a new limit keeps its mail but takes no more "
                           "(SMTP 452 4.2.2, IMAP NO [OVERQUOTA])", cmd_set)
    p.add_argument("who", metavar="MAILBOX", help=WHO)
    p.add_argument("--storage", metavar="KIB|default", help="STORAGE limit in KiB (1024 octets)")
    p.add_argument("--messages", metavar="N|default", help="MESSAGE limit (messages in all folders)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _defaults(settings: Settings) -> QuotaDefaults:
    return QuotaDefaults(settings.quota.storage_kib, settings.quota.messages)


def _print(info: dict[str, Any]) -> None:
    def limit(value: int | None) -> str:
        return "no limit" if value is None else str(value)

    def own(value: int | None, default: int) -> str:
        if value is None:
            return f"default ({limit(default or None)})"
        return "set: no limit" if value == 0 else "set"

    print(f"mailbox:   {info['mailbox']}")
    print(f"storage:   {info['storage_kib_used']} KiB used of {limit(info['storage_kib_limit'])} "
          f"[{own(info['storage_kib_set'], info['storage_kib_default'])}]")
    print(f"messages:  {info['messages_used']} of {limit(info['messages_limit'])} "
          f"[{own(info['messages_set'], info['messages_default'])}]")
    if info["full"]:
        print("full:      yes (new mail gets 452 4.2.2 and is retried by its sender)")


def cmd_show(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.read() as session:
        info = ops.show(session, svc.keys, _defaults(svc.settings), args.who)
    emit_json(info) if args.json else _print(info)
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.write() as session:
        info = ops.set_limits(session, svc.keys, cli_actor(), _defaults(svc.settings), args.who,
                              storage_kib=args.storage, messages=args.messages, now=datetime.now(UTC))
    emit_json(info) if args.json else _print(info)
    return 0
