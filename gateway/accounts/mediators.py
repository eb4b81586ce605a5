"""Mediators (France Services desks, "médiateurs numériques", issue 14): accounts with an argon2
password and a TOTP secret, console sessions and API tokens.

The administrators' mechanics, written once in :mod:`gateway.accounts.staff` (the TOTP secret
sealed under the system data key, a TOTP step accepted once, session and API tokens stored as
SHA-256 hashes), over tables of their own (:data:`TABLES`): code that authenticates
administrators (console, API, ``/metrics``) can never be handed a mediator, so a route nobody
taught about mediators stays closed to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from gateway.accounts import staff
from gateway.accounts.admins import check_name
from gateway.accounts.pros import AlreadyExists, NotFound
from gateway.accounts.staff import ISSUER
from gateway.store.keys import KeyService
from gateway.store.models import AdminAccount, Mediator, MediatorSession, MediatorToken

TOTP_PURPOSE = "mediator-totp"
TOKEN_PREFIX = "hmgm_"  # noqa: S105 - a prefix, not a secret
STATUSES = ("active", "disabled")
TABLES = staff.Tables(Mediator, MediatorSession, MediatorToken, MediatorSession.mediator_id,
                      MediatorToken.mediator_id, TOTP_PURPOSE, TOKEN_PREFIX)


def by_name(session: Session, name: str) -> Mediator | None:
    return staff.by_name(session, TABLES, name)


@dataclass(frozen=True)
class NewMediator:
    mediator: Mediator
    totp_secret: str

    def provisioning_uri(self, issuer: str = ISSUER) -> str:
        return staff.provisioning_uri(self.totp_secret, self.mediator.name, issuer)


def add_mediator(session: Session, keys: KeyService, name: str, password: str, *, organisation: str | None,
                 now: datetime) -> NewMediator:
    """A new active mediator; its name may not be an administrator's (one login form for both)."""
    name = check_name(name)
    if by_name(session, name) is not None:
        raise AlreadyExists(f"mediator {name} already exists")
    if session.execute(select(AdminAccount.id).where(AdminAccount.name == name)).first() is not None:
        raise AlreadyExists(f"{name} is an administrator's name; choose another name for the mediator")
    mediator, secret = staff.new_account(session, keys, TABLES, name, password, now=now, organisation=organisation)
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


def verify_login(session: Session, keys: KeyService, name: str, password: str, code: str, *,
                 now: datetime) -> Mediator | None:
    """Password and TOTP code both right, account active: the mediator (its step recorded); else None."""
    return staff.verify_login(session, keys, TABLES, name, password, code, now=now)


def create_session(session: Session, mediator: Mediator, *, peer: str | None, now: datetime,
                   lifetime: timedelta) -> tuple[str, str]:
    """(cookie token, CSRF token); only the token's hash is stored."""
    return staff.create_session(session, TABLES, mediator, peer=peer, now=now, lifetime=lifetime)


def session_mediator(session: Session, token: str, *, now: datetime,
                     idle: timedelta) -> tuple[MediatorSession, Mediator] | None:
    """The live session and its (active) mediator; an idle or expired session is ended."""
    return staff.live_session(session, TABLES, token, now=now, idle=idle)


def end_session(session: Session, token: str) -> None:
    staff.end_session(session, TABLES, token)


def create_token(session: Session, name: str, *, label: str | None, now: datetime) -> str:
    mediator = by_name(session, check_name(name))
    if mediator is None:
        raise NotFound(f"no mediator named {name} (create it with 'gateway mediator add {name}')")
    if mediator.status != "active":
        raise NotFound(f"mediator {name} is disabled")
    return staff.new_token(session, TABLES, mediator, label=label, now=now)


def token_mediator(session: Session, token: str, *, now: datetime) -> Mediator | None:
    return staff.token_account(session, TABLES, token, now=now)
