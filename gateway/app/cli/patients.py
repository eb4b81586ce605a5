"""``gateway patient list|close|delete``: patient spaces at national scale (SPEC §5).

``list`` streams (keyset pages, constant memory): a table, or with ``--json`` one JSON
array written as it goes. The INS is masked (first digit and key) unless ``--full-ins``
is given; every listing is audited with its filter and that choice. ``close`` and
``delete`` act on the patient's behalf, exactly as "Mon espace" does, and are audited
under the patient's reference (the patient's access history shows them).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from gateway.accounts.patients import STATES
from gateway.app.cli.common import UserError, services
from gateway.operations import patients as ops
from gateway.operations.common import cli_actor

# (field, heading, width): fixed widths, since the rows are printed as they come.
COLUMNS = (("id", "ID", 10), ("ins", "INS", 15), ("state", "STATE", 11), ("provisioned_at", "PROVISIONED", 11),
           ("opened_at", "OPENED", 10), ("closed_at", "CLOSED", 10), ("deletion_requested_at", "DELETION", 10))


def register(patient: Any, leaf: Any) -> None:
    p = leaf(patient, "list", "list patient spaces in creation order, streamed (INS masked unless --full-ins)",
             cmd_list)
    p.add_argument("--state", choices=STATES, help="only spaces in this state")
    p.add_argument("--limit", type=int, metavar="N", help="at most N spaces (default: all)")
    p.add_argument("--after-id", type=int, default=0, metavar="ID",
                   help="start after this space id (the next page: the last id printed)")
    p.add_argument("--full-ins", action="store_true",
                   help="print each INS in full (audited; avoid in logs and tickets)")
    p.add_argument("--json", action="store_true", help="machine-readable output (a JSON array, streamed)")
    p = leaf(patient, "close", "close a space on the patient's behalf: no more mail, no login; its data is kept "
                               "archived (encrypted) for patients.archive_retention_days, then purged; asks for --yes",
             cmd_close)
    p.add_argument("ins", metavar="INS")
    p.add_argument("--yes", action="store_true", help="confirm (a closed space cannot be reopened)")
    p = leaf(patient, "delete", "record the patient's request to delete their space: closed at once, purged "
                                "(data keys shredded, messages deleted) by the deletion-requests job at its next "
                                "run, within patients.deletion_deadline_days; asks for --yes", cmd_delete)
    p.add_argument("ins", metavar="INS")
    p.add_argument("--now", action="store_true", help="purge in the same transaction instead of at the job's run")
    p.add_argument("--yes", action="store_true", help="confirm (the data is destroyed for good)")


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    return str(value)[:10] if name.endswith("_at") else str(value)  # dates: YYYY-MM-DD


def cmd_list(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit: at least 1")
    if args.after_id < 0:
        raise UserError("--after-id: 0 or more")
    count, last = 0, None
    with services(args) as svc:
        rows = ops.iter_patients(svc.db, svc.keys, cli_actor(), state=args.state, after_id=args.after_id,
                                 limit=args.limit, full_ins=args.full_ins, now=datetime.now(UTC))
        out = sys.stdout
        if args.json:
            out.write("[")
        else:
            out.write("  ".join(heading.ljust(w) for _, heading, w in COLUMNS).rstrip() + "\n")
        for row in rows:
            if args.json:
                out.write(("," if count else "") + "\n  " + json.dumps(row, sort_keys=True))
            else:
                line = "  ".join(_cell(name, row[name]).ljust(w) for name, _, w in COLUMNS)
                out.write(line.rstrip() + "\n")
            count, last = count + 1, row["id"]
        if args.json:
            out.write("\n]\n" if count else "]\n")
    if args.limit is not None and count == args.limit and last is not None:
        print(f"({count} listed; next page: --after-id {last})", file=sys.stderr)
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    if not args.yes:
        raise UserError("nothing closed: a closed space gets no more mail and cannot be reopened; add --yes to confirm")
    with services(args) as svc, svc.db.write() as session:
        done = ops.close(session, svc.keys, cli_actor(), args.ins,
                         retention_days=svc.settings.patients.archive_retention_days, now=datetime.now(UTC))
    print(f"space {done['ins']} closed; archived until {done['purge_after'][:10]}, then purged")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    if not args.yes:
        raise UserError("nothing deleted: the space's data will be destroyed for good; add --yes to confirm")
    with services(args) as svc, svc.db.write() as session:
        cfg = svc.settings.patients
        done = ops.request_deletion(session, svc.keys, cli_actor(), args.ins, retention_days=cfg.archive_retention_days,
                                    now=datetime.now(UTC), purge_now=args.now)
    if args.now:
        print(f"space {done['ins']} purged: data keys shredded, {done['messages_deleted']} message(s) deleted")
    else:
        print(f"deletion of space {done['ins']} recorded and the space closed; the deletion-requests job purges it "
              f"at its next run (gateway serve runs it; or: gateway jobs run deletion-requests), "
              f"within {cfg.deletion_deadline_days} days")
    return 0
