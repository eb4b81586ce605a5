"""The patient web inbox's server-side sessions (table ``web_sessions``): the cookie carries
a random token, the database only its SHA-256; idle timeout and absolute lifetime are checked
on every use. Blocking: call from worker threads, inside the caller's transaction.

The token hash is the session's key (issue 23: ``web_sessions`` is distributed by it, migration
0019): one session is always read, touched or deleted by it (:func:`by_key`). It carries the
patient's id and mailbox id (migration 0021), the key of the patient's row on its shard. What concerns
every session of one patient (:func:`count_for`, :func:`destroy_all`: activation, logging out
the other devices, closure, purge) and the expiry sweep go to every shard, deliberately
(``FANOUTS`` in ``gateway/store/distribution.py``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from gateway.store.models import WebSession


@dataclass(frozen=True)
class Lifetimes:
    idle: timedelta
    absolute: timedelta
    activation: timedelta = timedelta(minutes=30)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(session: Session, patient_id: int, *, mailbox_id: int, stage: str, now: datetime,
           pending: bytes | None = None) -> tuple[str, WebSession]:
    """A new session; its token (the cookie) is returned, only its hash is kept. The client's
    address is not kept with it (issue 20: a dump must not tie a patient to a network); the
    audit entries of the sign-in carry the peer, as for every actor. ``mailbox_id`` is the
    patient's: each request reads the patient by ``(mailbox_id, id)`` (migration 0021)."""
    token = secrets.token_urlsafe(32)
    row = WebSession(token_hash=token_hash(token), patient_id=patient_id, mailbox_id=mailbox_id, stage=stage,
                     created_at=now, last_seen_at=now, ip=None, csrf_secret=secrets.token_urlsafe(32),
                     pending_sealed=pending)
    session.add(row)
    session.flush()
    return token, row


def _expired(row: WebSession, now: datetime, lifetimes: Lifetimes) -> bool:
    absolute = lifetimes.activation if row.stage == "activation" else lifetimes.absolute
    return now - row.last_seen_at > lifetimes.idle or now - row.created_at > absolute


def peek(session: Session, token: str | None, *, now: datetime, lifetimes: Lifetimes) -> WebSession | None:
    """The live session for ``token``, read only (neither touched nor deleted), or ``None``."""
    if not token or len(token) > 128:
        return None
    row = session.execute(select(WebSession).where(WebSession.token_hash == token_hash(token))).scalar_one_or_none()
    return None if row is None or _expired(row, now, lifetimes) else row


def lookup(session: Session, token: str | None, *, now: datetime, lifetimes: Lifetimes) -> WebSession | None:
    """The live session for ``token`` (touched), or ``None``; an expired one is deleted."""
    if not token or len(token) > 128:
        return None
    row = session.execute(select(WebSession).where(WebSession.token_hash == token_hash(token))).scalar_one_or_none()
    if row is None:
        return None
    if _expired(row, now, lifetimes):
        session.delete(row)
        session.flush()
        return None
    row.last_seen_at = now
    return row


def by_key(session: Session, key: str, *, for_update: bool = False) -> WebSession | None:
    """A session row by its key, the token's hash (``for_update``: row-locked on PostgreSQL
    until the transaction ends); whether it is still live is the caller's check at the request's
    start (:func:`lookup`)."""
    query = select(WebSession).where(WebSession.token_hash == key)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.execute(query).scalar_one_or_none()


def count_for(session: Session, patient_id: int, *, except_key: str | None = None) -> int:
    """How many sessions the patient has (the one of ``except_key`` left out)."""
    query = select(func.count()).select_from(WebSession).where(WebSession.patient_id == patient_id)
    if except_key is not None:
        query = query.where(WebSession.token_hash != except_key)
    return int(session.execute(query).scalar_one())


def destroy(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))


def destroy_all(session: Session, patient_id: int, *, keep_key: str | None = None) -> None:
    """Every session of the patient ends (but the one of ``keep_key``)."""
    query = delete(WebSession).where(WebSession.patient_id == patient_id)
    if keep_key is not None:
        query = query.where(WebSession.token_hash != keep_key)
    session.execute(query)


def purge_expired(session: Session, *, now: datetime, lifetimes: Lifetimes) -> int:
    result = session.execute(delete(WebSession).where(WebSession.last_seen_at < now - lifetimes.idle))
    return int(getattr(result, "rowcount", 0) or 0)
