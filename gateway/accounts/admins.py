"""Administrators: accounts (argon2 password + TOTP), console sessions and API tokens.

The mechanics (sealed TOTP secret, a TOTP step accepted once, tokens stored as SHA-256
hashes) are :mod:`gateway.accounts.staff`'s, shared with the mediators; every function here
hands it the admin tables (:data:`TABLES`) and nothing else, so authenticating an
administrator never reads a mediator's row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.accounts import staff
from gateway.accounts.pros import AlreadyExists, NotFound
from gateway.accounts.staff import ISSUER
from gateway.store.keys import KeyService
from gateway.store.models import AdminAccount, AdminSession, AdminToken, Mediator

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
TOTP_PURPOSE = "admin-totp"
TOKEN_PREFIX = "hmga_"  # noqa: S105 - a prefix, not a secret
TABLES = staff.Tables(AdminAccount, AdminSession, AdminToken, AdminSession.admin_id, AdminToken.admin_id,
                      TOTP_PURPOSE, TOKEN_PREFIX)


class InvalidAdminName(ValueError):
    pass


def check_name(name: str) -> str:
    """An administrator's or a mediator's name (one login form for both)."""
    value = name.strip().lower()
    if not NAME_RE.fullmatch(value):
        raise InvalidAdminName(f"invalid admin name {name!r} (lower-case letters, digits, '.', '_', '-'; 64 at most)")
    return value


def by_name(session: Session, name: str) -> AdminAccount | None:
    return staff.by_name(session, TABLES, name)


@dataclass(frozen=True)
class NewAdmin:
    admin: AdminAccount
    totp_secret: str

    def provisioning_uri(self, issuer: str = ISSUER) -> str:
        return staff.provisioning_uri(self.totp_secret, self.admin.name, issuer)


def add_admin(session: Session, keys: KeyService, name: str, password: str, *, now: datetime) -> NewAdmin:
    name = check_name(name)
    if by_name(session, name) is not None:
        raise AlreadyExists(f"admin {name} already exists")
    if session.execute(select(Mediator.id).where(Mediator.name == name)).first() is not None:
        raise AlreadyExists(f"{name} is a mediator's name; choose another name for the admin")
    admin, secret = staff.new_account(session, keys, TABLES, name, password, now=now)
    return NewAdmin(admin, secret)


def totp_secret(session: Session, keys: KeyService, admin: AdminAccount) -> str:
    return staff.totp_secret(session, keys, TABLES, admin)


def verify_login(session: Session, keys: KeyService, name: str, password: str, code: str, *,
                 now: datetime) -> AdminAccount | None:
    """Password and TOTP code both right, account active: the admin (its step recorded); else None."""
    return staff.verify_login(session, keys, TABLES, name, password, code, now=now)


@dataclass(frozen=True)
class OpenSession:
    token: str  # for the cookie; only its hash is stored
    csrf: str


def create_session(session: Session, admin: AdminAccount, *, peer: str | None, now: datetime,
                   lifetime: timedelta) -> OpenSession:
    token, csrf = staff.create_session(session, TABLES, admin, peer=peer, now=now, lifetime=lifetime)
    return OpenSession(token, csrf)


def session_admin(session: Session, token: str, *, now: datetime,
                  idle: timedelta) -> tuple[AdminSession, AdminAccount] | None:
    """The live session and its (active) admin; an idle or expired session is ended."""
    return staff.live_session(session, TABLES, token, now=now, idle=idle)


def end_session(session: Session, token: str) -> None:
    staff.end_session(session, TABLES, token)


def create_token(session: Session, name: str, *, label: str | None, now: datetime) -> str:
    admin = by_name(session, check_name(name))
    if admin is None:
        raise NotFound(f"no admin named {name} (create it with 'gateway admin add {name}')")
    return staff.new_token(session, TABLES, admin, label=label, now=now)


def token_admin(session: Session, token: str, *, now: datetime) -> AdminAccount | None:
    return staff.token_account(session, TABLES, token, now=now)
