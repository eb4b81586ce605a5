"""``gateway audit verify [--export FILE...]``, ``gateway audit anchor``, ``gateway audit prune [--dry-run]``
and ``gateway audit seal-links``.

The trail is partitioned by subject, one hash chain per partition, and ``anchor`` records every
partition's head in a global chain (``gateway/store/audit_anchors.py``) that ``verify`` checks.

Retention (``[audit]``, ``gateway/store/audit_retention.py``): entries older than
``audit.retention_days`` are exported to ``audit.export_dir`` and pruned behind a
checkpoint; ``verify`` says where the remaining trail starts and checks export files
against their checkpoints.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.app.cli.common import Leaf, Node, UserError, emit_json, services
from gateway.app.cli.jobs import parse_now
from gateway.operations import audit_trail
from gateway.operations.common import cli_actor
from gateway.store import audit, audit_conversion
from gateway.store.audit_retention import RetentionError, RetentionPolicy, plan, prune

SEAL_LINKS_EPILOG = """\
An audit entry about a patient written before migration 0015 holds the patient reference, the
correspondent, the peer and the details in clear. This command seals them under the patient's
data key (purged spaces: only the keyed index is kept), a batch at a time, each in one short
transaction with an entry 'audit.links.sealed' that commits what it converted, so 'gateway audit
verify' still proves the trail. Entries keep their original hashes. A trail that does not verify
is not converted. Interrupted? Run it again: it continues. Exit status 1 while entries are left.
Afterwards, vacuum the database (docs/deploy.md): old row versions may still hold the clear text.
"""


def register(aud: Node, leaf: Leaf) -> None:
    p = leaf(aud, "verify", "check the audit trail's hash chain from where retention left it, and export files "
                            "against their checkpoints (the check itself is audited, as in the console)",
             cmd_audit_verify)
    p.add_argument("--export", metavar="FILE", type=Path, nargs="+", default=[],
                   help="also check these export files (audit-*.jsonl) against their checkpoints")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = leaf(aud, "anchor", "record every audit partition's head in the global anchor chain now (gateway serve "
                            "also does it as the audit-anchor job), so that verify finds a partition cut short or "
                            "forked after it", cmd_audit_anchor)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = leaf(aud, "prune", "export the entries older than audit.retention_days to audit.export_dir, then prune "
                           "them behind a checkpoint (gateway serve also runs this as the audit-retention job)",
             cmd_audit_prune)
    p.add_argument("--dry-run", action="store_true", help="say what would be exported and pruned; change nothing")
    p.add_argument("--now", metavar="ISO-8601", help="run as if it were this time (UTC if no zone; for tests)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = leaf(aud, "seal-links", "seal the patient links of entries written before migration 0015 (issue 20), in "
             "batches while the gateway serves; each batch is committed by an entry in the chain", cmd_audit_seal_links)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = SEAL_LINKS_EPILOG
    p.add_argument("--batch-size", type=int, default=audit_conversion.DEFAULT_BATCH, metavar="N",
                   help="entries per transaction (default: %(default)s)")
    p.add_argument("--pause", type=float, default=0.0, metavar="S",
                   help="seconds to wait between batches (default: none)")


def _start(report: dict[str, Any]) -> str:
    if not report["checkpoints"]:
        return ""
    start = f" from #{report['start_id']}" if report["start_id"] is not None else ""
    return (f"{start}; {report['pruned']:,} earlier entries (until {report['pruned_until']}) pruned behind "
            f"{report['checkpoints']} checkpoint(s)")


def cmd_audit_verify(args: argparse.Namespace) -> int:
    with services(args) as svc:
        report = audit_trail.verify(svc.db, cli_actor(), args.export)
    files = report.get("exports", [])
    if args.json:
        emit_json(report)
        return 0 if report["ok"] and all(f["ok"] for f in files) else 1
    status = 0
    if report["ok"]:
        print(f"audit trail intact: {report['entries']} entries in {report['partitions']} partition(s), "
              f"{report['anchors']} anchor(s) checked{_start(report)}")
        if report["prune_pending"]:
            print("a prune is under way (its entries are still in the trail): the next run finishes it")
    elif report["bad_checkpoint"] is not None:
        print(f"audit trail BROKEN at checkpoint #{report['bad_checkpoint']}{_where(report)}: {report['problem']}",
              file=sys.stderr)
        status = 1
    elif report["first_bad_id"] is None:
        print(f"audit trail BROKEN{_where(report)}: {report['problem']}", file=sys.stderr)
        status = 1
    else:
        print(f"audit trail BROKEN at entry #{report['first_bad_id']}{_where(report)}: {report['problem']} "
              f"({report['entries']} entries verified before it)", file=sys.stderr)
        status = 1
    for f in files:
        if f["ok"]:
            print(f"{f['file']}: {f['entries']:,} entries #{f['first_id']}-#{f['last_id']}, "
                  f"matches checkpoint #{f['checkpoint']} (pruned {f['pruned_at']})")
        else:
            print(f"{f['file']}: does NOT verify: {f['problem']}", file=sys.stderr)
            status = 1
    return status


def _where(report: dict[str, Any]) -> str:
    return "" if report.get("partition") is None else f" (partition {report['partition']})"


def cmd_audit_anchor(args: argparse.Namespace) -> int:
    with services(args) as svc, svc.db.write() as session:
        row = audit.anchor_heads(session, datetime.now(UTC), force=True)
        assert row is not None  # forced
        result = {"anchor": row.id, "at": row.at.isoformat(), "hash": row.hash, "partitions": len(audit.heads_of(row))}
    if args.json:
        emit_json(result)
    else:
        print(f"anchor #{result['anchor']}: the heads of {result['partitions']} audit partitions recorded "
              f"(hash {result['hash']})")
    return 0


def cmd_audit_prune(args: argparse.Namespace) -> int:
    now = parse_now(args.now)
    with services(args) as svc:
        policy = RetentionPolicy(svc.settings.audit.retention_days, svc.settings.audit_export_dir,
                                 svc.settings.audit.prune_batch_size)
        if policy.days == 0:
            print("audit.retention_days is 0: every entry is kept; nothing to prune")
            return 0
        if args.dry_run:
            with svc.db.read() as session:
                found = plan(session, policy, now)
            return _print_plan(args, policy, found.cutoff, found.due, found.first_id, found.last_id, found.batches,
                               found.pending)
        try:
            result = prune(svc.db, policy, now, actor=cli_actor().audit_actor)
        except RetentionError as exc:
            raise UserError(str(exc)) from None
    batches = [{"checkpoint": b.checkpoint, "first_id": b.first_id, "last_id": b.last_id, "entries": b.entries,
                "file": str(b.file), "sha256": b.sha256} for b in result.batches]
    if args.json:
        emit_json({"ran": result.ran, "cutoff": result.cutoff.isoformat(), "pruned": result.pruned,
                   "batches": batches})
        return 0
    if not result.ran:
        print("another process is pruning the audit trail (it holds the lease); nothing done")
        return 0
    if not batches:
        print(f"nothing to prune: no entry older than {result.cutoff.isoformat()}")
        return 0
    print(f"pruned {result.pruned:,} entries older than {result.cutoff.isoformat()} in {len(batches)} batch(es):")
    for b in batches:
        print(f"  checkpoint #{b['checkpoint']}: entries #{b['first_id']}-#{b['last_id']} ({b['entries']:,}) "
              f"-> {b['file']} (sha256 {b['sha256']})")
    return 0


def _print_plan(args: argparse.Namespace, policy: RetentionPolicy, cutoff: datetime, due: int,
                first_id: int | None, last_id: int | None, batches: int, pending: int | None) -> int:
    if args.json:
        emit_json({"dry_run": True, "cutoff": cutoff.isoformat(), "due": due, "first_id": first_id,
                   "last_id": last_id, "batches": batches, "pending_checkpoint": pending,
                   "export_dir": str(policy.export_dir)})
        return 0
    if pending is not None:
        print(f"checkpoint #{pending} is unfinished: the next run completes it")
    if not due:
        print(f"dry run: no entry older than {cutoff.isoformat()}; nothing to prune")
        return 0
    print(f"dry run: {due:,} entries older than {cutoff.isoformat()} (entries #{first_id}-#{last_id}) would be "
          f"exported to {policy.export_dir} and pruned, in {batches} batch(es) of at most "
          f"{policy.batch_size:,}; nothing was changed")
    return 0


def cmd_audit_seal_links(args: argparse.Namespace) -> int:
    if not 1 <= args.batch_size <= 100_000:
        raise UserError("--batch-size must be between 1 and 100000")
    with services(args) as svc:
        try:
            done = audit_conversion.convert_all(svc.db, svc.keys, actor=cli_actor().audit_actor,
                                                limit=args.batch_size, pause=max(0.0, args.pause))
        except audit_conversion.ConversionRefused as exc:
            raise UserError(str(exc)) from None
        with svc.db.read() as session:
            left = audit_conversion.pending(session)
    print(f"sealed the patient links of {done.done:,} audit entries in {done.batches:,} batches "
          f"({done.shredded:,} about purged spaces: link shredded, index kept); {left:,} left in clear")
    return 0 if left == 0 else 1
