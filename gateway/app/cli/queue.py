"""``gateway queue list|show|retry|bounce|cancel``: the outbound queue (SPEC §7, §10).

The same operations as the console's queue page (:mod:`gateway.operations.queue`),
audited as ``admin:cli:<user>``. ``show`` prints the envelope an operator needs
(sender, recipients, DSN parameters; a patient's INS masked), never the message.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from gateway.app.cli.common import Leaf, Node, UserError, emit_json, emit_table, services
from gateway.operations import queue as ops
from gateway.operations.common import cli_actor

CLI_LIMIT = 10_000


def register(node: Node, leaf: Leaf) -> None:
    queue = node("queue", "the outbound queue (deliveries to trusted domains, DSNs, read receipts, notifications)")
    p = leaf(queue, "list", "list queue entries, oldest first (default: the pending ones)", cmd_list)
    p.add_argument("--status", default="pending", choices=[*ops.STATUSES, "all"],
                   help="entries in this state (default: %(default)s)")
    p.add_argument("--domain", metavar="DOMAIN", help="only entries for this destination domain")
    p.add_argument("--kind", choices=ops.KINDS, help="only entries of this kind")
    p.add_argument("--limit", type=int, default=200, metavar="N",
                   help=f"at most N entries (default: %(default)s, at most {CLI_LIMIT})")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = leaf(queue, "show", "show one entry: state, attempts, last error and envelope (never the message; "
                            "a patient's INS masked); the reading is audited", cmd_show)
    p.add_argument("id", metavar="ID", help="entry id (from 'gateway queue list')")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    for action, text in (
        ("retry", "make a pending entry due now (the running gateway's worker tries it at its next round)"),
        ("bounce", "give up on a pending entry: the worker closes it as bounced and sends the sender "
                   "an RFC 3464 failure notice saying the operator cancelled it"),
        ("cancel", "close a pending entry as cancelled, without notice to the sender"),
    ):
        p = leaf(queue, action, text, cmd_action)
        p.add_argument("id", metavar="ID", help="entry id (from 'gateway queue list')")
        p.set_defaults(action=action)


def cmd_list(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= CLI_LIMIT:
        raise UserError(f"--limit: from 1 to {CLI_LIMIT}")
    status = None if args.status == "all" else args.status
    with services(args) as svc, svc.db.read() as session:
        data = ops.list_entries(session, svc.keys, now=datetime.now(UTC), status=status, domain=args.domain,
                                kind=args.kind, limit=args.limit, max_limit=CLI_LIMIT)
    if args.json:
        emit_json(data)
        return 0
    counts = ", ".join(f"{s} {n}" for s, n in sorted(data["counts"].items())) or "empty"
    oldest = data["oldest_pending_age_seconds"]
    print(f"queue: {counts}" + (f"; oldest pending {oldest // 60} min" if oldest is not None else ""))
    rows = [{**e, "age": f"{e['age_seconds'] // 60} min", "status": e["status"] + (" (delivering)" if
             e["in_delivery"] else "")} for e in data["entries"]]
    emit_table(rows, ["id", "domain", "kind", "status", "attempts", "age", "next_attempt_at", "last_error"])
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.write() as session:
        info = ops.show(session, svc.keys, cli_actor(), args.id,
                        patient_domain=svc.settings.domains.patient_domain, now=datetime.now(UTC))
    if args.json:
        emit_json(info)
        return 0
    envelope = info.pop("envelope")
    for key, value in info.items():
        print(f"{key + ':':20}{'-' if value is None else value}")
    if envelope is None:
        print(f"{'envelope:':20}unreadable (data key unavailable)")
        return 0
    print(f"{'mail_from:':20}{envelope['mail_from']}")
    for r in envelope["recipients"]:
        notify = f" (NOTIFY={','.join(r['notify'])})" if r["notify"] else ""
        print(f"{'recipient:':20}{r['address']}{notify}")
    print(f"{'dsn:':20}RET={envelope['ret'] or '-'} ENVID={envelope['envid'] or '-'}"
          f"{' (delay notice sent)' if envelope['delay_notice_sent'] else ''}")
    return 0


DONE = {"retry": "due now; the running gateway's worker tries it at its next round",
        "bounce": "bounced; the running gateway's worker closes it and notifies the sender (RFC 3464)",
        "cancel": "cancelled; the sender is not notified"}


def cmd_action(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.write() as session:
        ops.act(session, cli_actor(), args.id, args.action, now=datetime.now(UTC))
    print(f"queue entry {args.id}: {DONE[args.action]}")
    return 0
