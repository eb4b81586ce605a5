"""``gateway domain trust import`` and ``gateway patient import``: bulk administration."""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from gateway.accounts.provisioning import DEFAULT_BATCH, ImportOptions, import_roster
from gateway.accounts.roster import BadRow, RosterError, count_lines
from gateway.app.cli.common import Leaf, UserError, actor, services
from gateway.app.cli.progress import Progress
from gateway.operations.trust_import import (
    DEFAULT_MAX_BYTES,
    TrustListError,
    apply_import,
    describe,
    plan_import,
    read_trust_list,
)


def register_trust(trust_sub: Any, leaf: Leaf) -> None:
    p = leaf(trust_sub, "import", "import the official MSSanté trust list (liste blanche XML), "
                                  "showing what changes", cmd_trust_import)
    p.add_argument("file", metavar="FILE.xml")
    p.add_argument("--dry-run", action="store_true", help="show what would change; change nothing")
    p.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES, metavar="N",
                   help="refuse files larger than this (default: %(default)s)")


def register_patient(patient_sub: Any, leaf: Leaf) -> None:
    p = leaf(patient_sub, "import", "provision patient spaces from a roster CSV (ins,email), idempotently",
             cmd_patient_import)
    p.add_argument("roster", metavar="ROSTER.csv")
    p.add_argument("--codes-out", metavar="FILE", help="write ins,code,expires_at for the letters (mode 0600)")
    p.add_argument("--open", action="store_true", help="open the mailboxes at once")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, metavar="N",
                   help="rows per transaction (default: %(default)s)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes preparing keys and codes alongside the writer (0: none; default: %(default)s)")


def cmd_trust_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        new = read_trust_list(path, max_bytes=args.max_bytes)
    except TrustListError as exc:
        raise UserError(str(exc)) from None
    with services(args) as svc, svc.db.write() as session:
        plan = plan_import(session, new)
        generated = new.generated_at.isoformat() if new.generated_at else "unknown date"
        print(f"{path.name}: {len(new.entries)} domains (generated {generated})")
        for line in describe(plan):
            print(line)
        counts = plan.counts()
        summary = (f"{counts['added']} to add, {counts['changed']} to change, {counts['removed']} to remove, "
                   f"{counts['unchanged']} unchanged")
        if plan.empty:
            print(f"nothing to change ({counts['unchanged']} unchanged)")
            return 0
        if args.dry_run:
            print(f"dry run: {summary}; nothing changed")
            return 0
        apply_import(session, new, plan, actor=actor(), now=datetime.now(UTC), source=str(path))
    print(f"applied: {summary}")
    return 0


@contextmanager
def _codes_file(path: str | None) -> Iterator[TextIO | None]:
    if path is None:
        yield None
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UserError(f"{path}: already exists; refusing to overwrite a codes file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot create ({exc.strerror})") from None
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write("ins,code,expires_at\r\n")
        yield handle


def cmd_patient_import(args: argparse.Namespace) -> int:
    path = Path(args.roster)
    if not path.is_file():
        raise UserError(f"{path}: roster file not found")
    if args.batch_size < 1 or args.workers < 0:
        raise UserError("--batch-size must be at least 1 and --workers at least 0")
    if args.codes_out is None and not args.open:
        print("warning: no --codes-out: activation codes will not be kept anywhere", file=sys.stderr)
    bad = 0

    def on_bad(row: BadRow) -> None:
        nonlocal bad
        bad += 1
        print(f"{path.name}:{row.line}: {row.reason}", file=sys.stderr)

    with services(args) as svc, _codes_file(args.codes_out) as codes:
        cfg = svc.settings.patients
        opts = ImportOptions(now=datetime.now(UTC), opposition_window=timedelta(days=cfg.opposition_window_days),
                             code_validity=timedelta(days=cfg.activation_code_validity_days), actor=actor(),
                             open_now=args.open, batch_size=args.batch_size, workers=args.workers)
        progress = Progress(sys.stderr, count_lines(path))
        writer = csv.writer(codes, lineterminator="\r\n") if codes is not None else None

        def on_codes(ins: Sequence[str], new_codes: Sequence[str], expires: datetime) -> None:
            if writer is None or codes is None:
                return
            stamp = expires.isoformat(timespec="seconds")
            writer.writerows((i, c, stamp) for i, c in zip(ins, new_codes, strict=True))
            codes.flush()
            os.fsync(codes.fileno())

        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                report = import_roster(svc.db, svc.ring, handle, opts, on_bad=on_bad, on_codes=on_codes,
                                       on_progress=progress.update)
        except (RosterError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: {exc}") from None
        progress.update(report.lines)
        progress.finish()
    r = report
    print(f"created {r.created}, already present {r.existing}, invalid {r.invalid}, duplicates {r.duplicates} "
          f"({r.lines} lines)" + (f"; codes in {args.codes_out}" if args.codes_out and r.created else ""))
    if r.created == 0 and r.invalid == 0 and r.duplicates == 0:
        print("nothing to change")
    return 1 if bad else 0
