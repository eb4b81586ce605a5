"""Administrators: accounts (argon2 password + TOTP), console sessions and API tokens.

The TOTP secret is sealed with the gateway's system data key; session and API tokens
are random (256 bits) and stored only as SHA-256 hashes, so a database dump cannot be
replayed as a login. A TOTP code is accepted once (RFC 6238 §5.2: the last accepted
time step is remembered).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.accounts.pros import AlreadyExists, NotFound, hash_password, verify_password
from gateway.store.keys import KeyService
from gateway.store.models import AdminAccount, AdminSession, AdminToken, Mediator

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
TOTP_PURPOSE = "admin-totp"
TOKEN_PREFIX = "hmga_"  # noqa: S105 - a prefix, not a secret
ISSUER = "Passerelle messagerie sante"


class InvalidAdminName(ValueError):
    pass


def check_name(name: str) -> str:
    value = name.strip().lower()
    if not NAME_RE.fullmatch(value):
        raise InvalidAdminName(f"invalid admin name {name!r} (lower-case letters, digits, '.', '_', '-'; 64 at most)")
    return value


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def by_name(session: Session, name: str) -> AdminAccount | None:
    return session.execute(select(AdminAccount).where(AdminAccount.name == name)).scalar_one_or_none()


@dataclass(frozen=True)
class NewAdmin:
    admin: AdminAccount
    totp_secret: str

    def provisioning_uri(self, issuer: str = ISSUER) -> str:
        return pyotp.TOTP(self.totp_secret).provisioning_uri(name=self.admin.name, issuer_name=issuer)


def add_admin(session: Session, keys: KeyService, name: str, password: str, *, now: datetime) -> NewAdmin:
    name = check_name(name)
    if by_name(session, name) is not None:
        raise AlreadyExists(f"admin {name} already exists")
    if session.execute(select(Mediator.id).where(Mediator.name == name)).first() is not None:
        raise AlreadyExists(f"{name} is a mediator's name; choose another name for the admin")
    secret = pyotp.random_base32()
    system = keys.system_key(session)
    admin = AdminAccount(name=name, password_hash=hash_password(password),
                         totp_sealed=system.seal(TOTP_PURPOSE, name, secret.encode("ascii")),
                         totp_data_key_id=system.data_key_id, last_totp_step=0, status="active", created_at=now)
    session.add(admin)
    session.flush()
    return NewAdmin(admin, secret)


def totp_secret(session: Session, keys: KeyService, admin: AdminAccount) -> str:
    key = keys.by_id(session, admin.totp_data_key_id) if admin.totp_data_key_id else keys.system_key(session)
    return key.open(TOTP_PURPOSE, admin.name, admin.totp_sealed).decode("ascii")


def check_totp(secret: str, code: str, now: datetime, last_step: int) -> int | None:
    """The accepted time step (current ±1 for clock drift), or None; never a step already used."""
    code = code.strip().replace(" ", "")
    if not re.fullmatch(r"\d{6}", code):
        return None
    totp = pyotp.TOTP(secret)
    step = int(now.timestamp()) // totp.interval
    for candidate in (step, step - 1, step + 1):
        if candidate > last_step and hmac.compare_digest(totp.at(candidate * totp.interval), code):
            return candidate
    return None


def verify_login(session: Session, keys: KeyService, name: str, password: str, code: str, *,
                 now: datetime) -> AdminAccount | None:
    """Password and TOTP code both right, account active: the admin (its step recorded); else None."""
    admin = by_name(session, name.strip().lower())
    if not verify_password(admin.password_hash if admin else None, password) or admin is None:
        return None
    if admin.status != "active":
        return None
    step = check_totp(totp_secret(session, keys, admin), code, now, admin.last_totp_step)
    if step is None:
        return None
    admin.last_totp_step = step
    admin.last_login_at = now
    return admin


@dataclass(frozen=True)
class OpenSession:
    token: str  # for the cookie; only its hash is stored
    csrf: str


def create_session(session: Session, admin: AdminAccount, *, peer: str | None, now: datetime,
                   lifetime: timedelta) -> OpenSession:
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.execute(delete(AdminSession).where(AdminSession.expires_at <= now))
    session.add(AdminSession(token_hash=token_hash(token), admin_id=admin.id, csrf_token=csrf, peer=peer,
                             created_at=now, last_seen_at=now, expires_at=now + lifetime))
    session.flush()
    return OpenSession(token, csrf)


def session_admin(session: Session, token: str, *, now: datetime,
                  idle: timedelta) -> tuple[AdminSession, AdminAccount] | None:
    """The live session and its (active) admin; an idle or expired session is ended."""
    row = session.execute(select(AdminSession).where(AdminSession.token_hash == token_hash(token))
                          ).scalar_one_or_none()
    if row is None:
        return None
    admin = session.get(AdminAccount, row.admin_id)
    if now >= row.expires_at or now - row.last_seen_at > idle or admin is None or admin.status != "active":
        session.delete(row)
        return None
    if now - row.last_seen_at > timedelta(seconds=30):  # spare a write on every request
        row.last_seen_at = now
    return row, admin


def end_session(session: Session, token: str) -> None:
    session.execute(delete(AdminSession).where(AdminSession.token_hash == token_hash(token)))


def create_token(session: Session, name: str, *, label: str | None, now: datetime) -> str:
    admin = by_name(session, check_name(name))
    if admin is None:
        raise NotFound(f"no admin named {name} (create it with 'gateway admin add {name}')")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(AdminToken(token_hash=token_hash(token), admin_id=admin.id, label=label, created_at=now))
    session.flush()
    return token


def token_admin(session: Session, token: str, *, now: datetime) -> AdminAccount | None:
    row = session.execute(select(AdminToken).where(AdminToken.token_hash == token_hash(token),
                                                   AdminToken.revoked_at.is_(None))).scalar_one_or_none()
    if row is None:
        return None
    admin = session.get(AdminAccount, row.admin_id)
    if admin is None or admin.status != "active":
        return None
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=5):
        row.last_used_at = now
    return admin
