"""Lifecycle jobs (SPEC §5, §7, §9): periodic, idempotent, audited, cluster-safe.

Each job takes the clock as a parameter (``now``), changes only rows that are due,
and runs in one write transaction with one audit entry of counts (actor
``system:jobs``) when it changed something. On PostgreSQL a transaction-scoped
``pg_try_advisory_xact_lock`` per job means that across a cluster one process runs a
job while the others skip it; on SQLite write transactions are ``BEGIN IMMEDIATE``
and so already serialised. A second run at the same ``now`` finds nothing to do.

``audit-retention`` is the one job that is not a single transaction: it writes export
files between its transactions (``gateway/store/audit_retention.py``), so it holds a lease
row instead of a lock, audits itself (``audit.pruned``, one per batch) and is run by
``run_retention``. ``expunged-uids`` is the other (one transaction per folder, see
``run_expunged``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select, text, update
from sqlalchemy.orm import Session

from gateway import metrics
from gateway.accounts.purge import purge_patient
from gateway.mailstore import expunged
from gateway.mailstore.chunks import remove_orphans
from gateway.settings import JobSettings, PatientSettings, Settings
from gateway.store import audit
from gateway.store.audit_anchors import ANCHOR_EVERY, last_anchor
from gateway.store.audit_retention import RetentionError, RetentionPolicy, prune
from gateway.store.db import Database
from gateway.store.keys import KeyService
from gateway.store.models import Patient, ProAccount, QueueEntry

if TYPE_CHECKING:
    from gateway.store.services import Services

ACTOR = "system:jobs"
_LOCK_BASE = 0x4A4F4253_0000  # "JOBS" << 16, + job index
log = logging.getLogger("gateway.jobs")

DEFAULT_EXPUNGED_BOUND = expunged.Bound(kept=1000, per_run=10_000)  # the imap section's defaults


@dataclass(frozen=True)
class JobConfig:
    patients: PatientSettings
    jobs: JobSettings
    retention: RetentionPolicy | None = None  # None: the audit-retention job does nothing
    retention_batches_per_run: int = 10
    expunged: expunged.Bound = DEFAULT_EXPUNGED_BOUND  # the expunged-uids job


def job_config(settings: Settings) -> JobConfig:
    """Every job's settings, the retention policy's folder resolved against the config file's."""
    policy = RetentionPolicy(settings.audit.retention_days, settings.audit_export_dir,
                             settings.audit.prune_batch_size)
    return JobConfig(settings.patients, settings.jobs, policy, settings.audit.prune_batches_per_run,
                     expunged.Bound(settings.imap.expunged_uids_kept, settings.imap.expunged_prune_per_run))


JobFn = Callable[[Session, KeyService, JobConfig, datetime], dict[str, int]]


def open_after_opposition(session: Session, _keys: KeyService, _cfg: JobConfig, now: datetime) -> dict[str, int]:
    """SPEC §5: a provisioned space opens by itself once its opposition window has passed."""
    result = session.execute(
        update(Patient).where(Patient.state == "provisioned", Patient.opposition_deadline <= now)
        .values(state="open", opened_at=now).execution_options(synchronize_session=False))
    return {"opened": result.rowcount}  # type: ignore[attr-defined]


def expire_activation_codes(session: Session, _keys: KeyService, _cfg: JobConfig, now: datetime) -> dict[str, int]:
    """Unused activation codes past their validity: the hash is cleared."""
    result = session.execute(
        update(Patient).where(Patient.activation_code_hash.is_not(None), Patient.activation_expires_at <= now)
        .values(activation_code_hash=None).execution_options(synchronize_session=False))
    return {"expired": result.rowcount}  # type: ignore[attr-defined]


def archive_and_purge_closed(session: Session, keys: KeyService, cfg: JobConfig, now: datetime) -> dict[str, int]:
    """Closed spaces keep their (encrypted) data for the retention period, then are purged."""
    retention = timedelta(days=cfg.patients.archive_retention_days)
    archived = 0
    for patient in session.execute(
            select(Patient).where(Patient.state == "closed", Patient.purge_after.is_(None))).scalars():
        patient.purge_after = (patient.closed_at or now) + retention
        archived += 1
    session.flush()
    due = session.execute(select(Patient).where(Patient.state == "closed", Patient.purge_after <= now)).scalars()
    purged = sum(1 for patient in due.all() if purge_patient(session, keys, patient, now) >= 0)
    return {"archived": archived, "purged": purged}


def purge_deletion_requests(session: Session, keys: KeyService, cfg: JobConfig, now: datetime) -> dict[str, int]:
    """Deletion on request (SPEC §5): purged at the next run, well within the deadline."""
    deadline = timedelta(days=cfg.patients.deletion_deadline_days)
    rows = session.execute(select(Patient).where(Patient.deletion_requested_at.is_not(None),
                                                 Patient.state != "purged")).scalars().all()
    late = sum(1 for p in rows if p.deletion_requested_at is not None and p.deletion_requested_at + deadline < now)
    for patient in rows:
        purge_patient(session, keys, patient, now)
    return {"purged": len(rows), "past_deadline": late}


def pro_inactivity(session: Session, _keys: KeyService, cfg: JobConfig, now: datetime) -> dict[str, int]:
    """Professional accounts unused for ``pro_inactivity_days``: warned, then disabled
    ``pro_disable_after_warning_days`` later unless they logged in meanwhile."""
    last_seen = func.coalesce(ProAccount.last_login_at, ProAccount.created_at)
    cleared = session.execute(
        update(ProAccount).where(ProAccount.inactivity_warned_at.is_not(None),
                                 ProAccount.last_login_at > ProAccount.inactivity_warned_at)
        .values(inactivity_warned_at=None).execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    disabled = session.execute(
        update(ProAccount).where(
            ProAccount.status == "active", ProAccount.inactivity_warned_at.is_not(None),
            ProAccount.inactivity_warned_at <= now - timedelta(days=cfg.jobs.pro_disable_after_warning_days))
        .values(status="disabled").execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    warned = session.execute(
        update(ProAccount).where(ProAccount.status == "active", ProAccount.inactivity_warned_at.is_(None),
                                 last_seen <= now - timedelta(days=cfg.jobs.pro_inactivity_days))
        .values(inactivity_warned_at=now).execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    return {"warned": warned, "disabled": disabled, "warning_cleared": cleared}


def expire_queue_entries(session: Session, _keys: KeyService, _cfg: JobConfig, now: datetime) -> dict[str, int]:
    """Queue entries past ``expires_at`` are made due at once, for the queue worker.

    The worker (``gateway/outbound/queue.py``) is the one that closes an expired entry
    as ``expired`` and sends the RFC 3464 failure notice to the sender; setting the
    status here would skip that notice. Entries held by a live lease are left alone.
    A sweep of every bucket in one statement (a bounded job on distribution.py's allow-list).
    """
    result = session.execute(
        update(QueueEntry).where(
            QueueEntry.status == "pending", QueueEntry.expires_at <= now, QueueEntry.next_attempt_at > now,
            or_(QueueEntry.lease_until.is_(None), QueueEntry.lease_until <= now))
        .values(next_attempt_at=now).execution_options(synchronize_session=False))
    return {"marked_due": result.rowcount}  # type: ignore[attr-defined]


def audit_anchor(session: Session, _keys: KeyService, _cfg: JobConfig, now: datetime) -> dict[str, int]:
    """Record every audit partition's head in the global anchor chain (``gateway/store/audit_anchors.py``)
    every ``ANCHOR_EVERY``, when a head moved since the last anchor."""
    last = last_anchor(session)
    if last is not None and now - last.at < ANCHOR_EVERY:
        return {"anchored": 0}
    return {"anchored": int(audit.anchor_heads(session, now) is not None)}


def orphan_chunks(session: Session, _keys: KeyService, _cfg: JobConfig, now: datetime) -> dict[str, int]:
    """Pieces of large messages whose row never came or is gone (``gateway/mailstore/chunks.py``)."""
    return {"removed": remove_orphans(session, now)}


JOBS: dict[str, tuple[str, JobFn]] = {
    "open-mailboxes": ("open provisioned spaces whose opposition window has passed", open_after_opposition),
    "expire-codes": ("clear activation codes past their validity", expire_activation_codes),
    "closed-spaces": ("archive closed spaces, purge them after the retention period", archive_and_purge_closed),
    "deletion-requests": ("purge spaces whose deletion was requested", purge_deletion_requests),
    "pro-inactivity": ("warn, then disable, professional accounts unused for a year", pro_inactivity),
    "queue-expiry": ("hand expired outbound queue entries to the worker for their bounce", expire_queue_entries),
    "orphan-chunks": ("remove pieces of large messages left by an interrupted delivery or an expunge",
                      orphan_chunks),
    "audit-anchor": ("record every audit partition's head in the global anchor chain (hourly)", audit_anchor),
}


RETENTION = "audit-retention"
RETENTION_DOES = "export audit entries older than audit.retention_days, then prune them behind a checkpoint"


EXPUNGED = "expunged-uids"
EXPUNGED_DOES = "delete each folder's expunged UIDs beyond imap.expunged_uids_kept (QRESYNC), oldest first"


def names() -> list[str]:
    """Every job, in the order ``gateway serve`` runs them."""
    return [*JOBS, RETENTION, EXPUNGED]


def describe() -> dict[str, str]:
    return {**{name: does for name, (does, _) in JOBS.items()}, RETENTION: RETENTION_DOES, EXPUNGED: EXPUNGED_DOES}


@dataclass(frozen=True)
class JobResult:
    name: str
    ran: bool  # False: another process holds this job's lock
    counts: dict[str, int] = field(default_factory=dict)


def run_retention(db: Database, cfg: JobConfig, now: datetime, *, max_batches: int | None = None) -> JobResult:
    """The ``audit-retention`` job: at most ``max_batches`` batches (default: the configured per-run cap)."""
    if cfg.retention is None or cfg.retention.days == 0:
        metrics.job_run(RETENTION, "ran")
        return JobResult(RETENTION, True, {"pruned": 0, "batches": 0})
    result = prune(db, cfg.retention, now, actor=ACTOR,
                   max_batches=max_batches if max_batches is not None else cfg.retention_batches_per_run)
    metrics.job_run(RETENTION, "ran" if result.ran else "skipped")
    return JobResult(RETENTION, result.ran, {"pruned": result.pruned, "batches": len(result.batches)})


def run_expunged(db: Database, cfg: JobConfig, now: datetime) -> JobResult:
    """The ``expunged-uids`` job (``gateway/mailstore/expunged.py``): one transaction per
    folder, so no advisory lock; two nodes running it at once is harmless (the second finds
    the rows gone). Audited once per run that deleted something."""
    counts = expunged.prune(db, cfg.expunged)
    if counts["deleted"]:
        with db.write() as session:
            audit.record(session, actor=ACTOR, action=f"jobs.{EXPUNGED}", details=counts, now=now)
    metrics.job_run(EXPUNGED, "ran")
    return JobResult(EXPUNGED, True, counts)


def run_job(db: Database, keys: KeyService, cfg: JobConfig, name: str, now: datetime) -> JobResult:
    if name == RETENTION:
        return run_retention(db, cfg, now)
    if name == EXPUNGED:
        return run_expunged(db, cfg, now)
    if name not in JOBS:
        raise KeyError(name)
    _, fn = JOBS[name]
    with db.write() as session:
        if not db.is_sqlite:
            lock = _LOCK_BASE + list(JOBS).index(name)
            if not session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock}).scalar_one():
                metrics.job_run(name, "skipped")
                return JobResult(name, False, {})
        counts = fn(session, keys, cfg, now)
        if any(counts.values()):
            audit.record(session, actor=ACTOR, action=f"jobs.{name}", details=counts, now=now)
    metrics.job_run(name, "ran")
    return JobResult(name, True, counts)


def run_all(db: Database, keys: KeyService, cfg: JobConfig, now: datetime) -> list[JobResult]:
    return [run_job(db, keys, cfg, name, now) for name in names()]


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def run_periodically(services: Services, interval: float | None = None,
                           clock: Callable[[], datetime] = _utcnow) -> None:
    """Run every job every ``interval`` seconds (default ``jobs.interval_seconds``) until cancelled.

    Jobs run in a worker thread so the event loop (SMTP, IMAP, web) never waits on them;
    a failing job is logged and retried at the next period. ``clock``: the time each job
    is run at (tests inject one).
    """
    cfg = job_config(services.settings)
    period = interval if interval is not None else services.settings.jobs.interval_seconds
    while True:
        for name in names():
            try:
                result = await asyncio.to_thread(run_job, services.db, services.keys, cfg, name, clock())
                if result.ran and any(result.counts.values()):
                    log.info("job done", extra={"job": name, "counts": result.counts})
            except RetentionError as exc:
                metrics.job_run(name, "failed")
                log.error("job failed", extra={"job": name, "problem": str(exc)})
            except Exception:
                metrics.job_run(name, "failed")
                log.exception("job failed", extra={"job": name})
        await asyncio.sleep(period)
