"""Mediators (France Services desks, "médiateurs numériques", issue 14): accounts with an argon2
password and a TOTP secret, console sessions and API tokens.

Same mechanics as :mod:`gateway.accounts.admins` (the TOTP secret sealed under the system data key,
a TOTP step accepted once, session and API tokens stored as SHA-256 hashes) in tables of their
own: code that authenticates administrators (console, API, ``/metrics``) can never be handed a
mediator, so a route nobody taught about mediators stays closed to them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gateway.accounts.admins import ISSUER, check_name, check_totp, token_hash
from gateway.accounts.pros import AlreadyExists, NotFound, hash_password, verify_password
from gateway.store.keys import KeyService
from gateway.store.models import AdminAccount, Mediator, MediatorSession, MediatorToken

TOTP_PURPOSE = "mediator-totp"
TOKEN_PREFIX = "hmgm_"  # noqa: S105 - a prefix, not a secret
STATUSES = ("active", "disabled")


def by_name(session: Session, name: str) -> Mediator | None:
    return session.execute(select(Mediator).where(Mediator.name == name)).scalar_one_or_none()


@dataclass(frozen=True)
class NewMediator:
    mediator: Mediator
    totp_secret: str

    def provisioning_uri(self, issuer: str = ISSUER) -> str:
        return pyotp.TOTP(self.totp_secret).provisioning_uri(name=self.mediator.name, issuer_name=issuer)


def add_mediator(session: Session, keys: KeyService, name: str, password: str, *, organisation: str | None,
                 now: datetime) -> NewMediator:
    """A new active mediator; its name may not be an administrator's (one login form for both)."""
    name = check_name(name)
    if by_name(session, name) is not None:
        raise AlreadyExists(f"mediator {name} already exists")
    if session.execute(select(AdminAccount.id).where(AdminAccount.name == name)).first() is not None:
        raise AlreadyExists(f"{name} is an administrator's name; choose another name for the mediator")
    secret = pyotp.random_base32()
    system = keys.system_key(session)
    mediator = Mediator(name=name, organisation=organisation, password_hash=hash_password(password),
                        totp_sealed=system.seal(TOTP_PURPOSE, name, secret.encode("ascii")),
                        totp_data_key_id=system.data_key_id, last_totp_step=0, status="active", created_at=now)
    session.add(mediator)
    session.flush()
    return NewMediator(mediator, secret)


def list_mediators(session: Session) -> list[Mediator]:
    return list(session.execute(select(Mediator).order_by(Mediator.name)).scalars())


def set_status(session: Session, name: str, status: str, *, now: datetime) -> Mediator:
    """Enable or disable; disabling ends the mediator's console sessions and revokes its API tokens."""
    if status not in STATUSES:
        raise ValueError(status)
    mediator = by_name(session, check_name(name))
    if mediator is None:
        raise NotFound(f"no mediator named {name}")
    mediator.status = status
    if status == "disabled":
        session.execute(delete(MediatorSession).where(MediatorSession.mediator_id == mediator.id))
        session.execute(update(MediatorToken).where(MediatorToken.mediator_id == mediator.id,
                                                    MediatorToken.revoked_at.is_(None)).values(revoked_at=now))
    return mediator


def _totp_secret(session: Session, keys: KeyService, mediator: Mediator) -> str:
    key = keys.by_id(session, mediator.totp_data_key_id) if mediator.totp_data_key_id else keys.system_key(session)
    return key.open(TOTP_PURPOSE, mediator.name, mediator.totp_sealed).decode("ascii")


def verify_login(session: Session, keys: KeyService, name: str, password: str, code: str, *,
                 now: datetime) -> Mediator | None:
    """Password and TOTP code both right, account active: the mediator (its step recorded); else None."""
    mediator = by_name(session, name.strip().lower())
    if not verify_password(mediator.password_hash if mediator else None, password) or mediator is None:
        return None
    if mediator.status != "active":
        return None
    step = check_totp(_totp_secret(session, keys, mediator), code, now, mediator.last_totp_step)
    if step is None:
        return None
    mediator.last_totp_step = step
    mediator.last_login_at = now
    return mediator


def create_session(session: Session, mediator: Mediator, *, peer: str | None, now: datetime,
                   lifetime: timedelta) -> tuple[str, str]:
    """(cookie token, CSRF token); only the token's hash is stored."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.execute(delete(MediatorSession).where(MediatorSession.expires_at <= now))
    session.add(MediatorSession(token_hash=token_hash(token), mediator_id=mediator.id, csrf_token=csrf, peer=peer,
                                created_at=now, last_seen_at=now, expires_at=now + lifetime))
    session.flush()
    return token, csrf


def session_mediator(session: Session, token: str, *, now: datetime,
                     idle: timedelta) -> tuple[MediatorSession, Mediator] | None:
    """The live session and its (active) mediator; an idle or expired session is ended."""
    row = session.execute(select(MediatorSession).where(MediatorSession.token_hash == token_hash(token))
                          ).scalar_one_or_none()
    if row is None:
        return None
    mediator = session.get(Mediator, row.mediator_id)
    if now >= row.expires_at or now - row.last_seen_at > idle or mediator is None or mediator.status != "active":
        session.delete(row)
        return None
    if now - row.last_seen_at > timedelta(seconds=30):
        row.last_seen_at = now
    return row, mediator


def end_session(session: Session, token: str) -> None:
    session.execute(delete(MediatorSession).where(MediatorSession.token_hash == token_hash(token)))


def create_token(session: Session, name: str, *, label: str | None, now: datetime) -> str:
    mediator = by_name(session, check_name(name))
    if mediator is None:
        raise NotFound(f"no mediator named {name} (create it with 'gateway mediator add {name}')")
    if mediator.status != "active":
        raise NotFound(f"mediator {name} is disabled")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(MediatorToken(token_hash=token_hash(token), mediator_id=mediator.id, label=label, created_at=now))
    session.flush()
    return token


def token_mediator(session: Session, token: str, *, now: datetime) -> Mediator | None:
    row = session.execute(select(MediatorToken).where(MediatorToken.token_hash == token_hash(token),
                                                      MediatorToken.revoked_at.is_(None))).scalar_one_or_none()
    if row is None:
        return None
    mediator = session.get(Mediator, row.mediator_id)
    if mediator is None or mediator.status != "active":
        return None
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=5):
        row.last_used_at = now
    return mediator
