"""What administrators and mediators share: password + TOTP login, console sessions, API tokens.

Written once, over the tables of one kind of account (:class:`Tables`): ``admins`` with
``admin_sessions`` and ``admin_api_tokens``, or ``mediators`` with theirs. The tables stay
separate (issue 14): :mod:`gateway.accounts.admins` hands these functions the admin tables
only, so nothing that authenticates an administrator ever reads a mediator's row.

The TOTP secret is sealed with the gateway's system data key; session and API tokens are
random (256 bits) and stored only as SHA-256 hashes, so a database dump cannot be replayed as
a login. A TOTP code is accepted once (RFC 6238 §5.2: the last accepted time step is kept).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import pyotp
from sqlalchemy import delete, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from gateway.accounts.pros import hash_password, verify_password
from gateway.store.keys import KeyService
from gateway.store.models import AdminAccount, AdminSession, AdminToken, Mediator, MediatorSession, MediatorToken

Account = TypeVar("Account", AdminAccount, Mediator)
LoginSession = TypeVar("LoginSession", AdminSession, MediatorSession)
ApiToken = TypeVar("ApiToken", AdminToken, MediatorToken)

ISSUER = "Passerelle messagerie sante"
SESSION_TOUCH = timedelta(seconds=30)  # spare a write on every request
TOKEN_TOUCH = timedelta(minutes=5)


@dataclass(frozen=True)
class Tables(Generic[Account, LoginSession, ApiToken]):
    """One kind of account: its table, its sessions' and tokens' tables, how they point at it."""

    account: type[Account]
    session: type[LoginSession]
    token: type[ApiToken]
    session_owner: InstrumentedAttribute[int]  # e.g. AdminSession.admin_id
    token_owner: InstrumentedAttribute[int]
    totp_purpose: str  # the sealing context of the TOTP secret
    token_prefix: str  # shows in a leaked token what it opens

    def owner(self, account: Account) -> dict[str, Any]:
        return {self.session_owner.key: account.id}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def by_name(session: Session, tables: Tables[Account, Any, Any], name: str) -> Account | None:
    return session.execute(select(tables.account).where(tables.account.name == name)).scalar_one_or_none()


def new_account(session: Session, keys: KeyService, tables: Tables[Account, Any, Any], name: str, password: str, *,
                now: datetime, **fields: Any) -> tuple[Account, str]:
    """A new active account (password hashed, TOTP secret sealed) and its TOTP secret, shown once."""
    secret = pyotp.random_base32()
    system = keys.system_key(session)
    account = tables.account(name=name, password_hash=hash_password(password),
                             totp_sealed=system.seal(tables.totp_purpose, name, secret.encode("ascii")),
                             totp_data_key_id=system.data_key_id, last_totp_step=0, status="active",
                             created_at=now, **fields)
    session.add(account)
    session.flush()
    return account, secret


def provisioning_uri(secret: str, name: str, issuer: str = ISSUER) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=name, issuer_name=issuer)


def totp_secret(session: Session, keys: KeyService, tables: Tables[Account, Any, Any], account: Account) -> str:
    key = (keys.system_by_id(session, account.totp_data_key_id) if account.totp_data_key_id
           else keys.system_key(session))
    return key.open(tables.totp_purpose, account.name, account.totp_sealed).decode("ascii")


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


def verify_login(session: Session, keys: KeyService, tables: Tables[Account, Any, Any], name: str, password: str,
                 code: str, *, now: datetime) -> Account | None:
    """Password and TOTP code both right, account active: the account (its step recorded); else None.

    The password is checked (argon2, constant work) even for an unknown name."""
    account = by_name(session, tables, name.strip().lower())
    if not verify_password(account.password_hash if account else None, password) or account is None:
        return None
    if account.status != "active":
        return None
    step = check_totp(totp_secret(session, keys, tables, account), code, now, account.last_totp_step)
    if step is None:
        return None
    account.last_totp_step = step
    account.last_login_at = now
    return account


def create_session(session: Session, tables: Tables[Account, LoginSession, Any], account: Account, *,
                   peer: str | None, now: datetime, lifetime: timedelta) -> tuple[str, str]:
    """(cookie token, CSRF token); only the token's hash is stored. Expired sessions are swept."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.execute(delete(tables.session).where(tables.session.expires_at <= now))
    session.add(tables.session(token_hash=token_hash(token), csrf_token=csrf, peer=peer, created_at=now,
                               last_seen_at=now, expires_at=now + lifetime, **tables.owner(account)))
    session.flush()
    return token, csrf


def live_session(session: Session, tables: Tables[Account, LoginSession, Any], token: str, *, now: datetime,
                 idle: timedelta) -> tuple[LoginSession, Account] | None:
    """The live session and its (active) account; an idle or expired session is ended."""
    row = session.execute(select(tables.session).where(tables.session.token_hash == token_hash(token))
                          ).scalar_one_or_none()
    if row is None:
        return None
    account = session.get(tables.account, getattr(row, tables.session_owner.key))
    if now >= row.expires_at or now - row.last_seen_at > idle or account is None or account.status != "active":
        session.delete(row)
        return None
    if now - row.last_seen_at > SESSION_TOUCH:
        row.last_seen_at = now
    return row, account


def end_session(session: Session, tables: Tables[Any, Any, Any], token: str) -> None:
    session.execute(delete(tables.session).where(tables.session.token_hash == token_hash(token)))


def new_token(session: Session, tables: Tables[Account, Any, ApiToken], account: Account, *, label: str | None,
              now: datetime) -> str:
    """A new API bearer token for ``account``, shown once (only its hash is stored)."""
    token = tables.token_prefix + secrets.token_urlsafe(32)
    session.add(tables.token(token_hash=token_hash(token), label=label, created_at=now,
                             **{tables.token_owner.key: account.id}))
    session.flush()
    return token


def token_account(session: Session, tables: Tables[Account, Any, ApiToken], token: str, *,
                  now: datetime) -> Account | None:
    """The (active) account of an unrevoked API token, or None."""
    row = session.execute(select(tables.token).where(tables.token.token_hash == token_hash(token),
                                                     tables.token.revoked_at.is_(None))).scalar_one_or_none()
    if row is None:
        return None
    account = session.get(tables.account, getattr(row, tables.token_owner.key))
    if account is None or account.status != "active":
        return None
    if row.last_used_at is None or now - row.last_used_at > TOKEN_TOUCH:
        row.last_used_at = now
    return account
