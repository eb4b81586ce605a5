"""Export files of pruned audit entries: JSON Lines, one stored row per line, verifiable offline.

Each line is one ``audit_log`` row as stored, every column (so the entry's hash can be
recomputed from the line alone): keys sorted, no spaces, ASCII only (``\\uXXXX`` escapes),
``\\n`` after every line. Values: integers and strings as they are, ``null``, timestamps
as ISO 8601 UTC with microseconds (``2026-01-31T08:00:00.000000+00:00``, the form the hash
covers), and binary columns (sealed parts) as ``{"base64": "..."}``: the stored bytes,
never opened, so a sealed patient link stays sealed in the file and the file verifies
without any key.

Since issue 23 a file holds a range of one audit partition (every line carries its
``partition``; ids are unique over all partitions, so file names stay as they were); a file
written before has no ``partition`` key: partition 0.

Files are written atomically (a temporary file in the same folder, ``fsync``, ``rename``,
then ``fsync`` of the folder), mode 0600, named after the range they hold. A file is
checked against its checkpoint by ``verify_file``: chain inside the file, count, both
chain ends, and the SHA-256 of the file's bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import LargeBinary, select
from sqlalchemy.orm import Session

from gateway.store.audit import row_hash
from gateway.store.audit_checkpoints import GENESIS
from gateway.store.audit_links import CONVERTED_FORM
from gateway.store.models import AuditCheckpoint, AuditEntry, UtcDateTime

TABLE = AuditEntry.__table__
READ_BATCH = 2000


class ExportError(Exception):
    """An export file that cannot be written, read or matched; worded for the operator."""


def export_name(first_id: int, last_id: int) -> str:
    return f"audit-{first_id:012d}-{last_id:012d}.jsonl"


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def encode_line(row: Mapping[str, Any]) -> bytes:
    """One stored row (column name -> stored value) as one line of the export."""
    record = {name: _encode(value) for name, value in row.items()}
    return (json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n").encode("ascii")


def decode_line(line: bytes) -> AuditEntry:
    """A line back into a (detached) row, with the stored values its hash covers."""
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise ExportError(f"not a JSON line ({exc})") from None
    if not isinstance(record, dict):
        raise ExportError("a line is not a JSON object")
    values: dict[str, Any] = {}
    for name, value in record.items():
        column = TABLE.columns.get(name)
        if column is None:
            raise ExportError(f"unknown column {name!r}")
        if isinstance(column.type, LargeBinary) and value is not None:
            if not (isinstance(value, dict) and isinstance(value.get("base64"), str)):
                raise ExportError(f"column {name!r}: expected {{\"base64\": ...}}")
            values[name] = base64.b64decode(value["base64"], validate=True)
        elif isinstance(column.type, UtcDateTime) and value is not None:
            values[name] = datetime.fromisoformat(value).astimezone(UTC)
        else:
            values[name] = value
    missing = {"id", "prev_hash", "hash"} - values.keys()
    if missing:
        raise ExportError(f"missing column(s) {', '.join(sorted(missing))}")
    values.setdefault("partition", 0)  # a file written before the partitioning (issue 23)
    return AuditEntry(**values)


def stored_rows(session: Session, partition: int, first_id: int, last_id: int) -> Iterator[dict[str, Any]]:
    """The partition's stored rows of ``first_id``..``last_id`` in id order, every column, by batches."""
    after = first_id - 1
    while True:
        rows = session.execute(select(TABLE).where(TABLE.c.partition == partition, TABLE.c.id > after,
                                                   TABLE.c.id <= last_id)
                               .order_by(TABLE.c.id).limit(READ_BATCH)).mappings().all()
        if not rows:
            return
        yield from (dict(r) for r in rows)
        after = rows[-1]["id"]


@dataclass(frozen=True)
class ExportSummary:
    """What an export holds: count, ids, both chain ends, the last entry's time, the SHA-256."""

    entries: int
    first_id: int
    last_id: int
    first_prev_hash: str
    last_hash: str
    last_at: datetime
    sha256: str
    partition: int = 0


class ChainWalk:
    """Checks rows one after the other, as ``audit verify`` does, and sums up what it saw."""

    def __init__(self, prev_hash: str | None = None) -> None:
        self.expected_prev = prev_hash  # None: the first row sets it
        self.first_prev: str | None = None
        self.first_id = self.last_id = self.entries = 0
        self.last_hash = GENESIS
        self.last_at: datetime | None = None
        self.partition = 0

    def add(self, row: AuditEntry) -> None:
        if self.expected_prev is not None and row.prev_hash != self.expected_prev:
            raise ExportError(f"entry #{row.id} does not follow the previous one")
        if row.hash_form == CONVERTED_FORM:  # proved by a conversion entry's running digest, not its own hash
            raise ExportError(f"entry #{row.id} was sealed by 'gateway audit seal-links' (issue 20): this release "
                              "does not prune converted entries; they stay in the trail")
        if row_hash(row.prev_hash, row) != row.hash:
            raise ExportError(f"entry #{row.id} was modified")
        if self.entries == 0:
            self.first_prev, self.first_id, self.partition = row.prev_hash, row.id, row.partition
        elif row.id <= self.last_id:
            raise ExportError(f"entry #{row.id} is out of order")
        elif row.partition != self.partition:
            raise ExportError(f"entry #{row.id} is of another partition ({row.partition}, not {self.partition})")
        self.expected_prev = self.last_hash = row.hash
        self.last_id, self.last_at = row.id, row.at
        self.entries += 1

    def summary(self, sha256: str) -> ExportSummary:
        if self.entries == 0 or self.first_prev is None or self.last_at is None:
            raise ExportError("no entries")
        return ExportSummary(self.entries, self.first_id, self.last_id, self.first_prev, self.last_hash, self.last_at,
                             sha256, self.partition)


def _sha256_of(path: Path) -> str | None:
    try:
        with path.open("rb") as src:
            return hashlib.file_digest(src, "sha256").hexdigest()
    except FileNotFoundError:
        return None


def write_atomically(folder: Path, name: str, lines: Iterable[bytes],
                     check: Callable[[str], object] | None = None) -> str:
    """Write ``folder/name`` (mode 0600) through a temporary file, fsync, rename; return the SHA-256.

    ``check(sha256)`` runs before the rename (an exception leaves no file). A file already
    there with other bytes is never replaced (it may be the only copy of entries since
    changed): ``ExportError``. The same bytes (a crashed run's file): replaced, a no-op.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = folder / name
    temp = folder / f".{name}.{os.getpid()}.tmp"
    digest = hashlib.sha256()
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            for line in lines:
                digest.update(line)
                out.write(line)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o600)  # an existing temporary file of a crashed run keeps its mode otherwise
        sha = digest.hexdigest()
        if check is not None:
            check(sha)
        there = _sha256_of(final)
        if there is not None and there != sha:
            raise ExportError(f"{final} already exists with other contents; it is left as it is")
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return sha


def read_file(path: Path) -> ExportSummary:
    """Check the chain inside an export file and sum it up (no database needed)."""
    walk = ChainWalk()
    digest = hashlib.sha256()
    try:
        with path.open("rb") as src:
            for number, line in enumerate(src, 1):
                digest.update(line)
                if not line.endswith(b"\n"):
                    raise ExportError(f"line {number} is cut short")
                try:
                    walk.add(decode_line(line))
                except ExportError as exc:
                    raise ExportError(f"line {number}: {exc}") from None
    except OSError as exc:
        raise ExportError(f"cannot read it ({exc.strerror or exc})") from None
    return walk.summary(digest.hexdigest())


def match_checkpoint(session: Session, summary: ExportSummary) -> AuditCheckpoint:
    """The done checkpoint this export belongs to, every recorded figure compared."""
    ck = session.execute(select(AuditCheckpoint).where(AuditCheckpoint.status == "done",
                                                       AuditCheckpoint.partition == summary.partition,
                                                       AuditCheckpoint.first_id == summary.first_id)).scalar()
    if ck is None:
        raise ExportError(f"no checkpoint of partition {summary.partition} starts at entry #{summary.first_id}")
    recorded = (ck.last_id, ck.entries, ck.first_prev_hash, ck.last_hash, ck.export_sha256)
    found = (summary.last_id, summary.entries, summary.first_prev_hash, summary.last_hash, summary.sha256)
    labels = ("last entry", "count", "first entry's previous hash", "last hash", "SHA-256 of the file")
    for label, want, got in zip(labels, recorded, found, strict=True):
        if want != got:
            raise ExportError(f"{label} differs from checkpoint #{ck.id} ({got} in the file, {want} recorded)")
    return ck
