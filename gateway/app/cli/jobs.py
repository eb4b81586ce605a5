"""``gateway jobs list`` and ``gateway jobs run [NAME]``: the lifecycle jobs, on demand."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from gateway.accounts.jobs import describe, job_config, names, run_job
from gateway.app.cli.common import Leaf, Node, UserError, emit_json, emit_table, services
from gateway.store.audit_retention import RetentionError


def register(node: Node, leaf: Leaf) -> None:
    jobs = node("jobs", "lifecycle jobs (gateway serve also runs them periodically)")
    p = leaf(jobs, "list", "list the lifecycle jobs", cmd_jobs_list)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = leaf(jobs, "run", "run one lifecycle job, or all of them, once", cmd_jobs_run)
    p.add_argument("name", nargs="?", metavar="NAME", help="job to run (default: all; see 'gateway jobs list')")
    p.add_argument("--now", metavar="ISO-8601", help="run as if it were this time (UTC if no zone; for tests)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def cmd_jobs_list(args: argparse.Namespace) -> int:
    rows = [{"job": name, "does": description} for name, description in describe().items()]
    if args.json:
        emit_json(rows)
    else:
        emit_table(rows, ["job", "does"])
    return 0


def parse_now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"--now: not an ISO-8601 date-time: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def cmd_jobs_run(args: argparse.Namespace) -> int:
    if args.name is not None and args.name not in names():
        raise UserError(f"unknown job {args.name!r} (one of: {', '.join(names())})")
    now = parse_now(args.now)
    chosen = [args.name] if args.name else names()
    rows = []
    with services(args) as svc:
        cfg = job_config(svc.settings)
        for name in chosen:
            try:
                result = run_job(svc.db, svc.keys, cfg, name, now)
            except RetentionError as exc:
                raise UserError(str(exc)) from None
            counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
            rows.append({"job": name, "ran": result.ran, "counts": result.counts,
                         "result": counts if result.ran else "skipped (running elsewhere)"})
    if args.json:
        emit_json(rows)
    else:
        emit_table(rows, ["job", "result"])
    return 0
