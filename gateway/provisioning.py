"""Provisioning patient spaces from a roster at national scale (SPEC §5, §11).

Pipeline, in constant memory: read and check a batch of rows -> look the INS up
(existing spaces are skipped, a repeat of an INS this run already took is a
"duplicate in file") -> prepare keys and codes (in worker processes when
``workers`` > 0, overlapping the database writes) -> insert the batch, with one
audit entry of counts, in one transaction -> hand the codes to the caller *after*
the commit (so a code is never issued for a space that does not exist).
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from multiprocessing.pool import AsyncResult, Pool
from typing import IO

from crypto.keyring import MasterKeyring
from gateway.roster import BadRow, RosterRow, batches, read_rows
from gateway.store import audit
from gateway.store.bulk import (
    PreparedBatch,
    existing_ins,
    insert_batch,
    max_patient_id,
    prepare_batch,
    worker_init,
    worker_prepare,
)
from gateway.store.db import Database

DEFAULT_BATCH = 5000


@dataclass
class ImportReport:
    lines: int = 0
    created: int = 0
    existing: int = 0
    duplicates: int = 0
    invalid: int = 0
    batches: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class ImportOptions:
    now: datetime
    opposition_window: timedelta
    code_validity: timedelta
    actor: str
    open_now: bool = False
    batch_size: int = DEFAULT_BATCH
    workers: int = 0


CodesSink = Callable[[Sequence[str], Sequence[str], datetime], None]


@dataclass
class _Pending:
    result: AsyncResult[PreparedBatch] | PreparedBatch
    counts: dict[str, int]
    lines: int
    ins: list[str]


def _scan(chunk: list[RosterRow | BadRow], inflight: set[str], report: ImportReport,
          on_bad: Callable[[BadRow], None]) -> tuple[list[RosterRow], dict[str, int]]:
    """Bad rows and in-batch/in-flight duplicates out; returns the candidates and counts."""
    first_line: dict[str, int] = {}
    good: list[RosterRow] = []
    counts = {"invalid": 0, "duplicates": 0}
    for row in chunk:
        if isinstance(row, BadRow):
            counts["invalid"] += 1
            on_bad(row)
        elif row.ins in first_line or row.ins in inflight:
            counts["duplicates"] += 1
            where = f" (first on line {first_line[row.ins]})" if row.ins in first_line else ""
            on_bad(BadRow(row.line, "duplicate in file" + where))
        else:
            first_line[row.ins] = row.line
            good.append(row)
    report.invalid += counts["invalid"]
    report.duplicates += counts["duplicates"]
    return good, counts


def import_roster(
    db: Database,
    ring: MasterKeyring,
    handle: IO[str],
    opts: ImportOptions,
    *,
    on_bad: Callable[[BadRow], None],
    on_codes: CodesSink | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    report = ImportReport()
    with db.read() as session:
        start_id = max_patient_id(session)  # spaces above this id were created by this run
    expires = opts.now + opts.code_validity
    pool: Pool | None = None
    if opts.workers > 0:
        pool = multiprocessing.get_context("fork").Pool(opts.workers, initializer=worker_init, initargs=(ring,))
    pending: deque[_Pending] = deque()

    def flush_one() -> None:
        item = pending.popleft()
        batch = item.result if isinstance(item.result, PreparedBatch) else item.result.get()
        with db.write() as session:
            insert_batch(session, batch, now=opts.now, opposition_deadline=opts.now + opts.opposition_window,
                         code_expires_at=expires, open_now=opts.open_now)
            audit.record(session, actor=opts.actor, action="patient.import.batch", now=opts.now,
                         details={**item.counts, "created": len(batch.ins), "open": opts.open_now})
        report.created += len(batch.ins)
        report.batches += 1
        if on_codes is not None:
            on_codes(batch.ins, batch.codes, expires)
        if on_progress is not None:
            on_progress(item.lines)

    try:
        for chunk in batches(read_rows(handle), opts.batch_size):
            report.lines = chunk[-1].line
            inflight = {ins for p in pending for ins in p.ins}
            good, counts = _scan(chunk, inflight, report, on_bad)
            with db.read() as session:
                found = existing_ins(session, [r.ins for r in good])
            fresh: list[tuple[str, str | None]] = []
            counts["existing"] = 0
            for row in good:
                row_id = found.get(row.ins)
                if row_id is None:
                    fresh.append((row.ins, row.email))
                elif row_id > start_id:
                    counts["duplicates"] += 1
                    report.duplicates += 1
                    on_bad(BadRow(row.line, "duplicate in file"))
                else:
                    counts["existing"] += 1
            report.existing += counts["existing"]
            if not fresh:
                if not pending and on_progress is not None:
                    on_progress(report.lines)
                continue
            result: AsyncResult[PreparedBatch] | PreparedBatch = (
                pool.apply_async(worker_prepare, (fresh,)) if pool is not None else prepare_batch(ring, fresh))
            pending.append(_Pending(result, counts, report.lines, [ins for ins, _ in fresh]))
            while len(pending) > max(1, opts.workers):
                flush_one()
        while pending:
            flush_one()
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return report
