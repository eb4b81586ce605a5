"""Provisioning patient spaces from a roster at national scale (SPEC §5, §11).

Pipeline, in constant memory: read a batch of rows -> check them and prepare keys
and codes (in worker processes when ``workers`` > 0, a few batches ahead of the
writer) -> in one transaction, look the INS up (existing spaces are skipped, a
repeat of an INS this run already took is a "duplicate in file"), insert the new
spaces and one audit entry of counts -> hand the codes to the caller *after* the
commit (so a code is never issued for a space that does not exist).
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from multiprocessing.pool import AsyncResult
from typing import IO

from crypto.keyring import MasterKeyring
from gateway.accounts.bulk import PreparedBatch, existing_ins, insert_batch, max_patient_id, prepare_batch
from gateway.accounts.roster import BadRow, RawRow, RosterRow, batches, check_row, read_raw
from gateway.store import audit
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


Columns = tuple[int, int | None]
Checked = tuple[list[RosterRow | BadRow], PreparedBatch]
_WORKER_RING: MasterKeyring | None = None


def check_and_prepare(ring: MasterKeyring, cols: Columns, chunk: list[RawRow]) -> Checked:
    """CPU-bound half of a batch: check every row, prepare keys and codes for the good ones.

    Preparing before the database says which INS already exist wastes a little work on
    re-runs, but lets worker processes do all of it while the writer writes."""
    rows = [check_row(line, cells, *cols) for line, cells in chunk]
    good = [(r.ins, r.email) for r in rows if isinstance(r, RosterRow)]
    return rows, prepare_batch(ring, good)


def _worker_init(ring: MasterKeyring) -> None:
    global _WORKER_RING
    _WORKER_RING = ring


def _worker(cols: Columns, chunk: list[RawRow]) -> Checked:
    assert _WORKER_RING is not None, "worker not initialised"
    return check_and_prepare(_WORKER_RING, cols, chunk)


class _Writer:
    """The database half: duplicates, existing spaces, insert + audit, then codes and progress."""

    def __init__(self, db: Database, ring: MasterKeyring, opts: ImportOptions, report: ImportReport,
                 on_bad: Callable[[BadRow], None], on_codes: CodesSink | None,
                 on_progress: Callable[[int], None] | None) -> None:
        if ring.index is None:
            raise ValueError("the key file has no index key (index-v<N>): start the gateway once to add it")
        self.db, self.index, self.opts, self.report = db, ring.index, opts, report
        self.on_bad, self.on_codes, self.on_progress = on_bad, on_codes, on_progress
        with db.read() as session:
            self.start_id = max_patient_id(session)  # spaces above this id were created by this run

    def write(self, rows: list[RosterRow | BadRow], prepared: PreparedBatch) -> None:
        counts = {"invalid": 0, "duplicates": 0, "existing": 0}
        first_line: dict[str, int] = {}
        candidates: list[tuple[int, RosterRow]] = []
        index = 0
        for row in rows:
            if isinstance(row, BadRow):
                counts["invalid"] += 1
                self.on_bad(row)
                continue
            if row.ins in first_line:
                counts["duplicates"] += 1
                self.on_bad(BadRow(row.line, f"duplicate in file (first on line {first_line[row.ins]})"))
            else:
                first_line[row.ins] = row.line
                candidates.append((index, row))
            index += 1
        with self.db.write() as session:
            found = existing_ins(session, self.index, [r.ins for _, r in candidates])
            keep: list[int] = []
            for i, row in candidates:
                row_id = found.get(row.ins)
                if row_id is None:
                    keep.append(i)
                elif row_id > self.start_id:
                    counts["duplicates"] += 1
                    self.on_bad(BadRow(row.line, "duplicate in file"))
                else:
                    counts["existing"] += 1
            batch = prepared.subset(keep)
            if keep:
                opts = self.opts
                insert_batch(session, batch, now=opts.now, opposition_deadline=opts.now + opts.opposition_window,
                             code_expires_at=opts.now + opts.code_validity, open_now=opts.open_now)
                audit.record(session, actor=opts.actor, action="patient.import.batch", now=opts.now,
                             details={**counts, "created": len(keep), "open": opts.open_now})
        r = self.report
        r.created += len(keep)
        r.batches += 1 if keep else 0
        r.invalid += counts["invalid"]
        r.duplicates += counts["duplicates"]
        r.existing += counts["existing"]
        r.lines = max(r.lines, rows[-1].line if rows else 0)
        if keep and self.on_codes is not None:
            self.on_codes(batch.ins, batch.codes, self.opts.now + self.opts.code_validity)
        if self.on_progress is not None:
            self.on_progress(r.lines)


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
    """Import a roster; ``workers`` > 0 checks rows and prepares keys in that many processes."""
    report = ImportReport()
    writer = _Writer(db, ring, opts, report, on_bad, on_codes, on_progress)
    cols, raw = read_raw(handle)
    if opts.workers == 0:
        for chunk in batches(raw, opts.batch_size):
            writer.write(*check_and_prepare(ring, cols, chunk))
        return report
    pool = multiprocessing.get_context("fork").Pool(opts.workers, initializer=_worker_init, initargs=(ring,))
    pending: deque[AsyncResult[Checked]] = deque()
    try:
        for chunk in batches(raw, opts.batch_size):
            pending.append(pool.apply_async(_worker, (cols, chunk)))
            while len(pending) > opts.workers + 1:
                writer.write(*pending.popleft().get())
        while pending:
            writer.write(*pending.popleft().get())
    finally:
        pool.terminate()
        pool.join()
    return report
