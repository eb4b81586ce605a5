"""Master key operations on a whole installation (issue 14): the start-up check of the key
file against the database, rotation in short batches, retiring an old version.

Start-up (:func:`check_at_start`, before any migration or write; then :func:`record_at_start`):
the key file must open every master key version the database uses (its key-check values,
and a sample data key of each version in use without one). Otherwise nothing starts and the
one-line error names the versions.

How a new version reaches running processes: a process re-reads its key file when it meets a
data key wrapped with a version it lacks, and on SIGHUP (``gateway.store.keys.KeyService``).
New data keys are wrapped with the highest version *recorded in the database*, so a version
written to the key files ahead of time (``keys rotate --prepare``) is used by nobody until
``keys rotate`` records it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from crypto.blind_index import IndexKeyring
from crypto.keyring import MasterKeyring
from gateway.settings import Settings
from gateway.store import audit
from gateway.store.db import Database
from gateway.store.index_keys import (
    active_index_version,
    check_index,
    record_index_checks,
    recorded_index_checks,
)
from gateway.store.keyfile import MasterKeyFileError, load_keyring, write_keyring
from gateway.store.keys import (
    KeyCheckReport,
    KeyService,
    active_version,
    check_ring,
    count_under,
    forget_check,
    record_checks,
    recorded_checks,
    versions_in_use,
)
from gateway.store.rewrap import BatchResult, pending_counts, rewrap_batch

log = logging.getLogger("gateway.keys")

DEFAULT_BATCH = 1000


class KeyCheckFailed(MasterKeyFileError):
    """The key file does not open every version the database uses (one line for the operator)."""


class KeyOperationError(Exception):
    """A refused key operation (one line for the operator)."""


# --------------------------------------------------------------------------- start-up

def _sqlite_missing(db: Database) -> bool:
    name = db.engine.url.database
    return db.is_sqlite and (not name or name == ":memory:" or not Path(name).exists())


def check_at_start(db: Database, ring: MasterKeyring, path: Path) -> KeyCheckReport:
    """Compare the key file with the database; raise :class:`KeyCheckFailed`. Reads only."""
    if _sqlite_missing(db):
        return KeyCheckReport()
    tables = set(inspect(db.engine).get_table_names())
    if "data_keys" not in tables:
        return KeyCheckReport()  # a database not created yet: nothing to compare with
    with db.read() as session:
        report = check_ring(session, ring, with_table="key_checks" in tables,
                            with_index_table="index_key_checks" in tables)
    if not report.ok:
        raise KeyCheckFailed(f"{path}: this master key file {report.problem()} (another installation's "
                             "key file, or an old copy?); nothing was started or written")
    return report


def record_at_start(db: Database, ring: MasterKeyring, report: KeyCheckReport) -> int:
    """After the migrations: record check values of versions in use that lack one (and of the
    current version on a database that has none yet). Returns the active version."""
    with db.read() as session:
        active = active_version(session)
    wanted = set(report.unrecorded)
    if active is None and not wanted:
        wanted.add(ring.current_version)
    if wanted:
        try:
            with db.write() as session:
                added = record_checks(session, ring, wanted)
                active = active_version(session)
        except IntegrityError:  # another node starting at the same moment recorded them first
            with db.read() as session:
                report = check_ring(session, ring)
                active = active_version(session)
            if not report.ok:
                raise KeyCheckFailed(f"the master key file {report.problem()}; nothing was started") from None
            added = []
        if added:
            log.info(f"key-check values recorded for {', '.join(f'v{v}' for v in added)}")
    assert active is not None
    return active


def record_initial(db: Database, ring: MasterKeyring) -> None:
    """``gateway init``: the check values of the new key file's versions (master and index), in
    a plain transaction (no checkpointer thread outliving the command)."""
    with db.engine.begin() as conn, Session(bind=conn) as session:
        record_checks(session, ring, [ring.current_version])
        if ring.index is not None:
            record_index_checks(session, ring.index, [ring.index.current_version])


def ensure_index_key(db: Database, ring: MasterKeyring, path: Path) -> tuple[MasterKeyring, int]:
    """After the migrations: make sure the key file has an index key the database records
    (issue 20); returns the ring (with its index keys) and the active index version.

    - The database records index key versions: the file must hold each with the same key
      (checked before anything was written by :func:`check_at_start`; checked again here).
    - It records none yet (a database from before migration 0013, or new): the file's newest
      index key is recorded; a file without any ``index-v<N>`` line first gets ``index-v1``
      (fresh random key), written atomically with mode 0600.
    - Two nodes with their own key files starting at once: the first to record wins; the
      other refuses with a message to copy the first one's key file.
    """
    with db.read() as session:
        checks = recorded_index_checks(session)
    report = check_index(checks, ring.index)
    if not report.ok:
        raise KeyCheckFailed(f"{path}: this key file {report.problem()}; nothing was started")
    if checks:
        return ring, max(checks)
    if ring.index is None:
        ring = ring.with_index(IndexKeyring.generate())
        try:
            write_keyring(path, ring)
        except OSError as exc:
            raise KeyCheckFailed(f"{path}: the key file has no index key (index-v<N>) and cannot be rewritten to add "
                                 f"one ({exc.__class__.__name__}); make it writable by the gateway for one start, or "
                                 "add a line 'index-v1 = <base64 of 32 random bytes>'; nothing was started") from None
        log.warning(f"{path}: index key index-v1 added to the key file (issue 20); copy this file to every "
                    "other node (mode 0600) before starting them")
    assert ring.index is not None
    version = ring.index.current_version
    try:
        with db.write() as session:
            record_index_checks(session, ring.index, [version])
    except IntegrityError:
        pass  # another node recorded one at the same moment: compared just below
    with db.read() as session:
        checks = recorded_index_checks(session)
        active = active_index_version(session)
    report = check_index(checks, ring.index)
    if not report.ok or active is None:
        raise KeyCheckFailed(f"{path}: another node recorded its own index key first: this key file "
                             f"{report.problem()}; copy that node's key file here (mode 0600); nothing was started")
    log.info(f"index key index-v{version} recorded")
    return ring, active


def key_service(ring: MasterKeyring, settings: Settings) -> KeyService:
    """A :class:`KeyService` that re-reads the configured key file (on demand and on SIGHUP)."""
    path = settings.master_key_path
    allow = settings.keys.allow_insecure_key_file
    return KeyService(ring, reader=lambda: load_keyring(path, allow_insecure=allow), source=str(path))


# --------------------------------------------------------------------------- rotation

@dataclass
class RotationPlan:
    target: int
    pending: dict[int, int]
    how: str  # "new" | "resume" | "prepared"
    index_target: int | None = None
    """The index key version rows are re-indexed to (None: the key file has no index key)."""

    @property
    def total(self) -> int:
        return sum(self.pending.values())


@dataclass
class RotationResult:
    target: int
    rewrapped: int = 0
    failed: list[int] = field(default_factory=list)
    batches: list[BatchResult] = field(default_factory=list)
    seconds: float = 0.0


def _require_current(session: Session, ring: MasterKeyring, path: Path) -> None:
    """The key file must still open everything the database uses (another node may have rotated)."""
    report = check_ring(session, ring)
    if not report.ok:
        raise KeyOperationError(f"{path} {report.problem()} (rotated from another node meanwhile?): copy the "
                                "current key file here (mode 0600) first; nothing was changed")


def _with_new_index(ring: MasterKeyring, recorded_index: dict[int, bytes]) -> MasterKeyring:
    """``ring`` with a new index key version, unless its newest one is not recorded yet (prepared)."""
    if ring.index is None or ring.index.current_version not in recorded_index:
        return ring
    return ring.with_index(ring.index.with_new_version())


def prepare_version(db: Database, keys: KeyService, path: Path) -> tuple[int, bool]:
    """Write a new version (and a new index key version) into the key file without using them;
    (version, added)."""
    ring = keys.ring
    with db.read() as session:
        _require_current(session, ring, path)
        recorded = recorded_checks(session)
        recorded_index = recorded_index_checks(session)
        in_use = set(versions_in_use(session))
    current = ring.current_version
    if current not in recorded and current not in in_use:
        return current, False
    new_ring = _with_new_index(ring.with_new_version(), recorded_index)
    write_keyring(path, new_ring)
    keys.ring = new_ring
    return new_ring.current_version, True


def plan_rotation(db: Database, keys: KeyService, path: Path, *, new_version: bool = False) -> RotationPlan:
    """Choose the target version (a new one, an unfinished rotation's, or a prepared one) and
    record its check value. Writes the key file first when a version is added."""
    ring = keys.ring
    current = ring.current_version
    with db.read() as session:
        _require_current(session, ring, path)
        recorded = recorded_checks(session)
        recorded_index = recorded_index_checks(session)
        in_use = set(versions_in_use(session))
        pending = pending_counts(session, current)
    if new_version:
        how = "new"
    elif current not in recorded and current not in in_use:
        how = "prepared"  # by 'keys rotate --prepare', or a rotation stopped before it recorded it
    elif sum(pending.values()):
        how = "resume"
    else:
        how = "new"
    before = ring
    if how == "new":
        # A new index key version too (issue 20), unless one is prepared already.
        ring = _with_new_index(ring.with_new_version(), recorded_index)
        # The file first (old versions kept): a crash before the database commit leaves every
        # key wrapped under a version the file still holds, and a re-run takes this version.
        write_keyring(path, ring)
        keys.ring = ring
    target = ring.current_version
    index_target = None if ring.index is None else ring.index.current_version
    if not _record_target(db, ring, target):
        # Another node recorded this version number with its own key (two rotations at once,
        # or each node prepared its own): never re-wrap under a key the others do not have.
        if how == "new":
            write_keyring(path, before)
            keys.ring = before
        raise KeyOperationError(
            f"v{target} is already recorded in the database with another key (a rotation started from another "
            f"node?): copy that node's key file to {path} (mode 0600) and run 'gateway keys rotate' again; "
            "nothing was re-wrapped")
    with db.read() as session:
        pending = pending_counts(session, target)
    return RotationPlan(target, pending, how, index_target)


def _record_target(db: Database, ring: MasterKeyring, target: int) -> bool:
    """Record ``target``'s check value (and that of the ring's newest index key); False when the
    database holds another key under that number."""
    index = ring.index
    for _ in range(2):
        try:
            with db.write() as session:
                existing = recorded_checks(session).get(target)
                if existing is not None and not ring.verify_key_check(target, existing):
                    return False
                if index is not None:
                    found = recorded_index_checks(session).get(index.current_version)
                    if found is not None and not index.verify_key_check(index.current_version, found):
                        return False
                    record_index_checks(session, index, [index.current_version])
                if existing is None:
                    record_checks(session, ring, [target])
                return True
        except IntegrityError:  # recorded by another process meanwhile (PostgreSQL): look again
            continue
    return False


def run_rotation(db: Database, ring: MasterKeyring, plan: RotationPlan, *, batch_size: int = DEFAULT_BATCH,
                 on_batch: Callable[[BatchResult], None] | None = None, passes: int = 3,
                 pause: float = 0.0) -> RotationResult:
    """Re-wrap every data key not under ``plan.target``, ``batch_size`` per short transaction.

    A second pass picks up keys created meanwhile under an older version by a process that had
    not yet learnt of the new one; keys that do not unwrap are reported, never changed.
    """
    result = RotationResult(plan.target)
    started = time.perf_counter()
    failed: set[int] = set()
    for _ in range(passes):
        with db.read() as session:
            pending = pending_counts(session, plan.target)
        sources = [v for v, n in sorted(pending.items()) if n]
        if sum(pending.values()) <= len(failed):
            break
        for source in sources:
            if not ring.has(source):
                raise KeyOperationError(f"{count_under_db(db, source):,} data keys are wrapped with v{source}, "
                                        "which the key file lacks")
            after = 0
            while True:
                batch = rewrap_batch(db, ring, source=source, target=plan.target, after_id=after, limit=batch_size)
                if batch.last_id is None:
                    break
                after = batch.last_id
                result.rewrapped += batch.rewrapped
                failed.update(batch.failed)
                result.batches.append(batch)
                if on_batch is not None:
                    on_batch(batch)
                if pause:
                    time.sleep(pause)
    result.failed = sorted(failed)
    result.seconds = time.perf_counter() - started
    return result


def count_under_db(db: Database, version: int) -> int:
    with db.read() as session:
        return count_under(session, version)


# --------------------------------------------------------------------------- retiring

def retire(db: Database, keys: KeyService, path: Path, version: int, *, actor: str) -> MasterKeyring:
    """Remove ``version`` from the key file once no data key uses it (and forget its check value)."""
    ring = keys.ring
    if not ring.has(version):
        raise KeyOperationError(f"v{version} is not in {path} (versions: "
                                f"{', '.join(f'v{v}' for v in ring.versions)})")
    with db.write() as session:
        active = active_version(session)
        if version in (ring.current_version, active):
            raise KeyOperationError(f"v{version} is the current master key version; "
                                    "'gateway keys rotate' first, then retire the old one")
        used = count_under(session, version)
        if used:
            raise KeyOperationError(f"v{version} still wraps {used:,} data key{'s' if used > 1 else ''}; "
                                    "run 'gateway keys rotate' to finish re-wrapping them, then retire it")
        forget_check(session, version)
        audit.record(session, actor=actor, action="keys.retire", details={"version": version})
    # The database first: a crash now leaves a version in the file that nothing uses (harmless).
    new_ring = ring.without_version(version)
    write_keyring(path, new_ring)
    keys.ring = new_ring
    return new_ring
