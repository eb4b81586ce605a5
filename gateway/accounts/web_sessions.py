"""The patient web inbox's server-side sessions (table ``web_sessions``): the cookie carries
a random token, the database only its SHA-256; idle timeout and absolute lifetime are checked
on every use. Blocking: call from worker threads, inside the caller's transaction.
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


def create(session: Session, patient_id: int, *, stage: str, now: datetime,
           pending: bytes | None = None) -> tuple[str, WebSession]:
    """A new session; its token (the cookie) is returned, only its hash is kept. The client's
    address is not kept with it (issue 20: a dump must not tie a patient to a network); the
    audit entries of the sign-in carry the peer, as for every actor."""
    token = secrets.token_urlsafe(32)
    row = WebSession(token_hash=token_hash(token), patient_id=patient_id, stage=stage, created_at=now,
                     last_seen_at=now, ip=None, csrf_secret=secrets.token_urlsafe(32),
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


def by_id(session: Session, session_id: int, *, for_update: bool = False) -> WebSession | None:
    """A session row by id (``for_update``: row-locked on PostgreSQL until the transaction ends)."""
    query = select(WebSession).where(WebSession.id == session_id)
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    return session.execute(query).scalar_one_or_none()


def count_for(session: Session, patient_id: int, *, except_id: int | None = None) -> int:
    """How many sessions the patient has (``except_id`` left out)."""
    query = select(func.count()).select_from(WebSession).where(WebSession.patient_id == patient_id)
    if except_id is not None:
        query = query.where(WebSession.id != except_id)
    return int(session.execute(query).scalar_one())


def destroy(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(WebSession).where(WebSession.token_hash == token_hash(token)))


def destroy_all(session: Session, patient_id: int, *, keep_id: int | None = None) -> None:
    query = delete(WebSession).where(WebSession.patient_id == patient_id)
    if keep_id is not None:
        query = query.where(WebSession.id != keep_id)
    session.execute(query)


def purge_expired(session: Session, *, now: datetime, lifetimes: Lifetimes) -> int:
    result = session.execute(delete(WebSession).where(WebSession.last_seen_at < now - lifetimes.idle))
    return int(getattr(result, "rowcount", 0) or 0)
