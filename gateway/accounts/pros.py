"""Hosted domains, trusted domains and professional accounts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import nacl.exceptions
import nacl.pwhash
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.mailstore.folders import PRO_FOLDERS, create_standard_folders
from gateway.store.keys import KeyService
from gateway.store.models import HostedDomain, ProAccount, TrustedDomain
from gateway.store.raw import RawStatement, Runner

# Passwords are argon2id (RFC 9106) in the PHC string form, computed by libsodium (PyNaCl):
# its implementation needs ~30 % less CPU than argon2-cffi's bundled reference code for the
# same parameters (issue 8: 175 ms against 245 ms per login here, and a login storm is
# CPU-bound on exactly this). RFC 9106 §4's second recommended setting in memory and passes
# (64 MiB, t = 3), one lane: libsodium computes one. Hashes made earlier by argon2-cffi
# (4 lanes) verify unchanged; argon2-cffi remains for any form libsodium does not read.
OPSLIMIT = 3
MEMLIMIT = 64 * 1024 * 1024
_legacy = PasswordHasher()
# Each verification holds MEMLIMIT of memory: more of them at once than there are cores only
# adds memory (50 IMAP clients logging in at once peaked at ~475 MiB with the 6 threads of
# the default pool). One at a time per process, as Dovecot's auth process does: with one per
# core, 50 IMAP logins at once peaked 57 MiB higher (PSS 327 against 270 MiB) for a login
# rate within the noise (issue 22, bench/README.md).
_hashing = threading.BoundedSemaphore(1)


class AlreadyExists(Exception):
    pass


class NotFound(LookupError):
    pass


def hash_password(password: str) -> str:
    return nacl.pwhash.argon2id.str(password.encode("utf-8"), opslimit=OPSLIMIT, memlimit=MEMLIMIT).decode("ascii")


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant-time argon2 verification; False for a missing or malformed hash."""
    with _hashing:
        if not stored_hash:
            hash_password(password)  # spend the same time: no account enumeration by timing
            return False
        if stored_hash.startswith(("$argon2id$", "$argon2i$")):
            try:
                return bool(nacl.pwhash.verify(stored_hash.encode("ascii"), password.encode("utf-8")))
            except nacl.exceptions.InvalidkeyError:
                return False
            except (nacl.exceptions.CryptoError, UnicodeEncodeError, ValueError):
                pass  # a form libsodium does not read: argon2-cffi below
        try:
            return _legacy.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False


def add_hosted_domain(session: Session, name: str, *, now: datetime | None = None) -> HostedDomain:
    if session.execute(select(HostedDomain).where(HostedDomain.name == name)).scalar_one_or_none():
        raise AlreadyExists(f"hosted domain {name} already exists")
    if session.execute(select(TrustedDomain).where(TrustedDomain.name == name)).scalar_one_or_none():
        raise AlreadyExists(f"{name} is a trusted (remote) domain; it cannot also be hosted here")
    domain = HostedDomain(name=name, created_at=now or datetime.now(UTC))
    session.add(domain)
    session.flush()
    return domain


def hosted_domain(session: Session, name: str) -> HostedDomain | None:
    return session.execute(select(HostedDomain).where(HostedDomain.name == name)).scalar_one_or_none()


def add_trusted_domain(session: Session, name: str, *, now: datetime | None = None, **fields: object) -> TrustedDomain:
    if session.execute(select(TrustedDomain).where(TrustedDomain.name == name)).scalar_one_or_none():
        raise AlreadyExists(f"trusted domain {name} already exists")
    if hosted_domain(session, name) is not None:
        raise AlreadyExists(f"{name} is hosted here; it cannot also be a trusted remote domain")
    at = now or datetime.now(UTC)
    entry = TrustedDomain(name=name, created_at=at, modified_at=at, **fields)
    session.add(entry)
    session.flush()
    return entry


def trusted_domain(session: Session, name: str) -> TrustedDomain | None:
    return session.execute(select(TrustedDomain).where(TrustedDomain.name == name)).scalar_one_or_none()


def add_pro(
    session: Session,
    keys: KeyService,
    address: str,
    domain: HostedDomain,
    *,
    name: str | None = None,
    password: str | None = None,
    accepts_patient_initiated: bool = False,
    mailbox_type: str = "personal",
    now: datetime | None = None,
) -> ProAccount:
    if session.execute(select(ProAccount).where(ProAccount.address == address)).scalar_one_or_none():
        raise AlreadyExists(f"account {address} already exists")
    at = now or datetime.now(UTC)
    mk = keys.create_mailbox(session, "pro", now=at)
    create_standard_folders(session, mk.mailbox_id, PRO_FOLDERS, now=at)
    account = ProAccount(
        address=address, domain_id=domain.id, mailbox_id=mk.mailbox_id,
        name_sealed=mk.seal("name", "pro", name.encode()) if name else None,
        password_hash=hash_password(password) if password else None,
        accepts_patient_initiated=accepts_patient_initiated, status="active", created_at=at,
        mailbox_type=mailbox_type, password_login=True,
    )
    session.add(account)
    session.flush()
    return account


def pro_by_address(session: Session, address: str) -> ProAccount | None:
    return session.execute(select(ProAccount).where(ProAccount.address == address)).scalar_one_or_none()


_P = ProAccount.__table__.c
_STATUS_BY_ID = RawStatement("SELECT status FROM pro_accounts WHERE id = ?", (_P.id,))
_STATUS_BY_ADDRESS = RawStatement("SELECT status FROM pro_accounts WHERE address = ?", (_P.address,))


def status_by_id(runner: Runner, account_id: int) -> str | None:
    """The account's status ("active", "disabled"); None once it was removed. One primary-key
    read, for the open sessions' check (an account suspended meanwhile loses them)."""
    row = _STATUS_BY_ID.first(runner, account_id)
    return None if row is None else str(row[0])


def status_by_address(runner: Runner, address: str) -> str | None:
    """:func:`status_by_id` by the canonical (lower-case) address."""
    row = _STATUS_BY_ADDRESS.first(runner, address)
    return None if row is None else str(row[0])


def session_end_reason(status: str | None) -> str | None:
    """Why an open session of an account in ``status`` must end (None: it may go on): the
    reason code of the audit entry and the log line (``account.disabled``, ``account.removed``)."""
    if status == "active":
        return None
    return "account.removed" if status is None else f"account.{status}"
