"""The persistent outbound queue (SPEC §7): one row per message × destination domain.

Envelope and message are sealed with the gateway's system data key, the entry's uuid in
the associated data, so rows cannot be swapped. A worker *claims* due entries: it writes a
per-claim lease token (``lease_owner``) and ``lease_until``; only the holder of the token
may then complete, reschedule or fail the entry (the token is in every WHERE clause), so
two workers never deliver one entry, and a worker that died loses its entries to another
once the lease has run out. PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED``; SQLite:
write transactions are ``BEGIN IMMEDIATE`` (one writer at a time).

Buckets (issue 23): each entry has a ``bucket`` (:func:`gateway.store.partitions.queue_bucket`
of its uuid), the queue's distribution column. A claim visits the buckets one by one, each
with an equality on the bucket (so ``SKIP LOCKED`` runs on one shard of a distributed
database), starting from a bucket that differs per worker and per claim; every statement on
one entry names it by (bucket, uuid).

Errors (issue 20): a peer's reply can quote an address or an identifier, so the text of
``last_error`` is sealed under the entry's data key (``last_error_sealed``, purpose
:data:`ERR_PURPOSE`; :func:`open_error` for the admin views); the clear ``last_error`` keeps
only the reply codes (:func:`codes_only`), or a fixed phrase of the gateway's own.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from crypto.envelope import DecryptionError
from gateway.outbound.values import KINDS, RET_VALUES, Envelope, QueuedRecipient, RecipientResult, redact
from gateway.store import audit
from gateway.store.keys import KeyService, KeyUnavailable, MailboxKey
from gateway.store.models import QueueEntry
from gateway.store.partitions import QUEUE_BUCKETS, queue_bucket

__all__ = [
    "ClaimedEntry",
    "QueuedRecipient",
    "claim_due",
    "complete",
    "enqueue",
    "entry",
    "fail",
    "open_envelope",
    "reschedule",
    "retry_delay",
    "stats",
]

log = logging.getLogger("gateway.outbound.queue")
ACTOR = "system:queue"
ENV_PURPOSE = "queue-env"
MSG_PURPOSE = "queue-msg"
ERR_PURPOSE = "queue-err"
_CODES = re.compile(r"(?<![\w.])(?:[245]\d\d|[245]\.\d{1,3}\.\d{1,3})(?![\w.])")


@dataclass(frozen=True)
class ClaimedEntry:
    """A claimed entry with its envelope and message opened; ``owner`` is the lease token."""

    id: int
    uuid: str  # with the bucket it gives, what complete(), reschedule() and fail() are given
    domain: str
    kind: str
    owner: str
    envelope: Envelope
    message: bytes
    attempts: int  # including the one this claim is for
    created_at: datetime
    expires_at: datetime
    lease_until: datetime
    bounced_by: str | None = None  # an operator gave up on it (gateway queue bounce): close, tell the sender


def retry_delay(attempts: int, schedule_minutes: Sequence[int]) -> timedelta:
    """Delay after the ``attempts``-th failed attempt: the schedule, then its last value repeats."""
    if not schedule_minutes:
        raise ValueError("empty retry schedule")
    index = min(max(attempts, 1), len(schedule_minutes)) - 1
    return timedelta(minutes=schedule_minutes[index])


def enqueue(
    session: Session,
    keys: KeyService,
    *,
    domain: str,
    mail_from: str | None,
    recipients: Sequence[QueuedRecipient],
    message: bytes,
    kind: str = "message",
    ret: str | None = None,
    envid: str | None = None,
    now: datetime,
    max_age: timedelta,
) -> QueueEntry:
    """Add one entry in the caller's transaction; it is due at once."""
    if not recipients:
        raise ValueError("an outbound entry needs at least one recipient")
    if kind not in KINDS:
        raise ValueError(f"unknown queue entry kind {kind!r}")
    if ret is not None and ret not in RET_VALUES:
        raise ValueError("RET must be HDRS or FULL (RFC 3461 §4.3)")
    uuid = secrets.token_hex(16)
    key = keys.system_key(session)
    envelope = Envelope(mail_from, tuple(recipients), ret, envid)
    entry = QueueEntry(
        bucket=queue_bucket(uuid), uuid=uuid, data_key_id=key.data_key_id, domain=domain.lower(), kind=kind,
        envelope_sealed=key.seal(ENV_PURPOSE, uuid, envelope.to_json()),
        message_sealed=key.seal(MSG_PURPOSE, uuid, message),
        size=len(message), status="pending", attempts=0, created_at=now,
        next_attempt_at=now, expires_at=now + max_age,
    )
    session.add(entry)
    session.flush()
    return entry


def entry(session: Session, uuid: str, *, lock: bool = False) -> QueueEntry | None:
    """One entry by its uuid, in its bucket (row-locked on PostgreSQL when ``lock``)."""
    query = select(QueueEntry).where(QueueEntry.bucket == queue_bucket(uuid), QueueEntry.uuid == uuid)
    if lock and session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def _entry_key(session: Session, keys: KeyService, row: QueueEntry) -> MailboxKey:
    if row.data_key_id is None:
        raise KeyUnavailable("queue entry without data key")
    return keys.system_by_id(session, row.data_key_id)  # entries are sealed under the system's keys


def open_envelope(session: Session, keys: KeyService, row: QueueEntry) -> Envelope:
    """The entry's envelope (sender, recipients, DSN parameters), never its message.

    Raises KeyUnavailable, DecryptionError, ValueError or KeyError when it cannot be read.
    """
    return Envelope.from_json(_entry_key(session, keys, row).open(ENV_PURPOSE, row.uuid, row.envelope_sealed))


def _lease_token(owner: str) -> str:
    return f"{owner[:47]}/{secrets.token_hex(8)}"  # fits lease_owner's 64 characters


def bucket_order(start: int) -> list[int]:
    """Every bucket once, from ``start`` on (wrapping)."""
    return [(start + i) % QUEUE_BUCKETS for i in range(QUEUE_BUCKETS)]


def _due_in(session: Session, bucket: int, now: datetime, limit: int) -> list[QueueEntry]:
    query = (
        select(QueueEntry)
        .where(
            QueueEntry.bucket == bucket,
            QueueEntry.status == "pending",
            or_(QueueEntry.next_attempt_at <= now, QueueEntry.expires_at <= now),
            or_(QueueEntry.lease_until.is_(None), QueueEntry.lease_until <= now),
        )
        .order_by(QueueEntry.next_attempt_at, QueueEntry.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.execute(query).scalars())


def claim_due(
    session: Session, keys: KeyService, *, owner: str, now: datetime, lease: timedelta, limit: int,
    start: int | None = None,
) -> list[ClaimedEntry]:
    """Claim up to ``limit`` due (or expired) pending entries whose lease is free or has run out,
    bucket after bucket from ``start`` (default: a random bucket, so that workers spread)."""
    first = secrets.randbelow(QUEUE_BUCKETS) if start is None else start % QUEUE_BUCKETS
    rows: list[QueueEntry] = []
    for bucket in bucket_order(first):
        if len(rows) >= limit:
            break
        rows += _due_in(session, bucket, now, limit - len(rows))
    token = _lease_token(owner)
    claimed: list[ClaimedEntry] = []
    for row in rows:
        row.lease_owner = token
        row.lease_until = now + lease
        row.attempts = row.attempts + 1
        try:
            key = _entry_key(session, keys, row)
            envelope = Envelope.from_json(key.open(ENV_PURPOSE, row.uuid, row.envelope_sealed))
            message = key.open(MSG_PURPOSE, row.uuid, row.message_sealed)
        except (KeyUnavailable, DecryptionError, ValueError, KeyError) as exc:
            # Nothing can be delivered nor bounced: close the entry and say so (no content involved).
            log.error("queue entry unreadable, closed", extra={"entry": row.uuid, "error": type(exc).__name__})
            _finish(session, None, row, "bounced", "local; queue entry unreadable (data key unavailable)", now,
                    fixed=True)
            audit.record(session, actor=ACTOR, action="queue.unreadable", subject_ref=f"queue:{row.uuid}",
                         details={"domain": row.domain}, now=now)
            continue
        claimed.append(ClaimedEntry(
            row.id, row.uuid, row.domain, row.kind, token, envelope, message, row.attempts,
            row.created_at, row.expires_at, now + lease, row.bounced_by,
        ))
    session.flush()
    return claimed


def _owned(session: Session, uuid: str, owner: str) -> QueueEntry | None:
    """The entry if ``owner`` still holds its lease and it is still pending (row-locked on PostgreSQL)."""
    query = select(QueueEntry).where(
        QueueEntry.bucket == queue_bucket(uuid), QueueEntry.uuid == uuid, QueueEntry.lease_owner == owner,
        QueueEntry.status == "pending"
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        log.warning("queue lease lost before the result was written", extra={"entry": uuid})
    return row


def codes_only(error: str) -> str:
    """The SMTP reply codes (RFC 5321 §4.2) and enhanced status codes (RFC 3463) of ``error``,
    nothing else: what ``last_error`` keeps in clear ("-" when there is none)."""
    return " ".join(_CODES.findall(error))[:500] or "-"


def _set_error(session: Session, keys: KeyService | None, row: QueueEntry, error: str | None, *,
               fixed: bool = False) -> None:
    """``last_error``: the codes in clear, the text sealed under the entry's data key (none
    when the key is gone). ``fixed``: a phrase of the gateway's own, naming nobody, kept in clear."""
    if not error:
        row.last_error, row.last_error_sealed = None, None
        return
    text = error[:500]
    row.last_error = text if fixed else codes_only(text)
    row.last_error_sealed = None
    if fixed or keys is None or row.data_key_id is None:
        return
    try:
        row.last_error_sealed = _entry_key(session, keys, row).seal(ERR_PURPOSE, row.uuid, text.encode())
    except KeyUnavailable:
        pass  # the entry's key is gone: the codes alone remain


def open_error(session: Session, keys: KeyService, row: QueueEntry) -> str | None:
    """The entry's last error as written (sealed text), else its clear codes."""
    if row.last_error_sealed is not None and row.data_key_id is not None:
        try:
            return _entry_key(session, keys, row).open(ERR_PURPOSE, row.uuid, row.last_error_sealed).decode()
        except (KeyUnavailable, DecryptionError, UnicodeDecodeError):
            pass
    return row.last_error


def _finish(session: Session, keys: KeyService | None, row: QueueEntry, status: str, error: str | None,
            now: datetime, *, fixed: bool = False) -> None:
    row.status = status
    _set_error(session, keys, row, error, fixed=fixed)
    row.finished_at = now
    row.lease_owner = None
    row.lease_until = None


def _summary(results: Sequence[RecipientResult]) -> str:
    return "; ".join(f"{r.code or '-'} {r.status} {redact(r.diagnostic, 120)}" for r in results)[:500]


def _audit(session: Session, row: QueueEntry, action: str, now: datetime, **details: object) -> None:
    # SPEC §9: identifiers and the domain only, never addresses or content.
    audit.record(session, actor=ACTOR, action=action, subject_ref=f"queue:{row.uuid}",
                 details={"domain": row.domain, "kind": row.kind, "attempts": row.attempts, **details}, now=now)


def complete(
    session: Session, keys: KeyService, uuid: str, owner: str, results: Sequence[RecipientResult], *,
    now: datetime
) -> bool:
    """Every recipient has a final outcome: ``sent`` if any was delivered, else ``bounced``."""
    row = _owned(session, uuid, owner)
    if row is None:
        return False
    delivered = sum(1 for r in results if r.outcome == "delivered")
    failed = [r for r in results if r.outcome != "delivered"]
    _finish(session, keys, row, "sent" if delivered else "bounced", _summary(failed) if failed else None, now)
    if delivered:
        _audit(session, row, "queue.delivered", now, recipients=delivered)
    if failed:
        _audit(session, row, "queue.bounced", now, recipients=len(failed),
               codes=sorted({r.status for r in failed}))
    session.flush()
    return True


def reschedule(
    session: Session,
    keys: KeyService,
    uuid: str,
    owner: str,
    *,
    envelope: Envelope,
    results: Sequence[RecipientResult],
    now: datetime,
    retry_schedule_minutes: Sequence[int],
) -> datetime | None:
    """Temporary failure: keep the recipients still to try (``envelope``), retry after the backoff.

    ``results`` are this attempt's outcomes (the temporary ones give ``last_error``).
    Returns the next attempt time, or None if the lease was lost.
    """
    row = _owned(session, uuid, owner)
    if row is None:
        return None
    if not envelope.recipients:
        raise ValueError("reschedule needs the recipients still to try; use complete()")
    key = keys.system_by_id(session, row.data_key_id) if row.data_key_id is not None else keys.system_key(session)
    row.envelope_sealed = key.seal(ENV_PURPOSE, row.uuid, envelope.to_json())
    row.data_key_id = key.data_key_id
    nxt = now + retry_delay(row.attempts, retry_schedule_minutes)
    row.next_attempt_at = min(nxt, row.expires_at) if row.expires_at > now else nxt
    deferred = [r for r in results if r.outcome == "temporary"]
    _set_error(session, keys, row, _summary(deferred) or None)
    row.lease_owner = None
    row.lease_until = None
    delivered = sum(1 for r in results if r.outcome == "delivered")
    if delivered:
        _audit(session, row, "queue.delivered", now, recipients=delivered, partial=True)
    bounced = [r for r in results if r.outcome == "permanent"]
    if bounced:
        _audit(session, row, "queue.bounced", now, recipients=len(bounced), partial=True,
               codes=sorted({r.status for r in bounced}))
    _audit(session, row, "queue.deferred", now, recipients=len(envelope.recipients),
           next_attempt_at=row.next_attempt_at.isoformat(), codes=sorted({r.status for r in deferred}))
    session.flush()
    return row.next_attempt_at


def fail(
    session: Session,
    keys: KeyService,
    uuid: str,
    owner: str,
    *,
    error: str,
    now: datetime,
    expired: bool = False,
    results: Sequence[RecipientResult] = (),
) -> bool:
    """Close the entry for good: ``expired`` (too old) or ``bounced`` (permanent failure)."""
    row = _owned(session, uuid, owner)
    if row is None:
        return False
    delivered = sum(1 for r in results if r.outcome == "delivered")
    if delivered:
        _audit(session, row, "queue.delivered", now, recipients=delivered, partial=True)
    _finish(session, keys, row, "expired" if expired else "bounced", redact(error, 500), now)
    _audit(session, row, "queue.expired" if expired else "queue.bounced", now,
           recipients=sum(1 for r in results if r.outcome != "delivered") or None)
    session.flush()
    return True


def stats(session: Session) -> dict[str, int]:
    """How many entries per status (for ``gateway queue`` and metrics): a bounded fan-out over
    the buckets (distribution.py's allow-list), one grouped count."""
    rows = session.execute(select(QueueEntry.status, func.count()).group_by(QueueEntry.status)).all()
    return {status: int(count) for status, count in rows}
