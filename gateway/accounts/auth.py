"""Password authentication for professionals (SMTP AUTH and IMAP LOGIN share it).

argon2 verification runs in a worker thread so the event loop keeps serving; failures
are throttled (:class:`gateway.accounts.throttle.LoginThrottle`: each attempt is counted before
the password is checked, so concurrent attempts cannot race the limits); every checked attempt
is audited with the peer address.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select

from gateway import metrics
from gateway.accounts.pros import verify_password
from gateway.accounts.throttle import REFUSED, IndexKeys, LoginThrottle, Reservation, Runner, ThrottleConfig
from gateway.settings import AuthSettings
from gateway.store import audit
from gateway.store.db import Database
from gateway.store.models import ProAccount


@dataclass(frozen=True)
class AuthOutcome:
    ok: bool
    account: str | None  # the canonical (lower-case) address when ok
    account_id: int | None
    mailbox_id: int | None
    # "auth.ok" | "auth.failed" | "auth.disabled" | "auth.password_refused" | one of throttle.REFUSED
    reason: str
    retry_after: float | None = None

    @property
    def throttled(self) -> bool:
        """Refused by the throttle without the password being checked."""
        return self.reason in REFUSED


class Throttle(Protocol):
    def reserve(self, account: str | None, ip: str, now: float) -> Reservation: ...
    async def admit(self, account: str | None, ip: str, run: Runner = ...) -> Reservation: ...
    def failed(self, reservation: Reservation, now: float) -> None: ...
    def succeeded(self, reservation: Reservation, now: float) -> None: ...
    def released(self, reservation: Reservation, now: float) -> None: ...


def throttle_config(auth: AuthSettings) -> ThrottleConfig:
    """The ``[auth]`` section as the throttle's configuration."""
    minutes = auth.lockout_minutes * 60.0
    return ThrottleConfig(window=minutes, delay_after=auth.delay_after, lockout_after=auth.lockout_after,
                          ip_delay_after=max(auth.delay_after, auth.ip_lockout_after // 6),
                          ip_lockout_after=auth.ip_lockout_after, account_slow_after=auth.account_slow_after,
                          max_delay=auth.max_delay_seconds, lockout=minutes)


class Authenticator:
    """Checks credentials; the throttle is shared by every node (``LoginThrottle``)."""

    def __init__(self, db: Database, throttle: Throttle, *, password_login: bool = True) -> None:
        self.db = db
        self.throttle: Throttle = throttle
        self.password_login = password_login  # [auth] password_login; each account may refuse too

    @classmethod
    def configured(cls, db: Database, keys: IndexKeys, auth: AuthSettings) -> Authenticator:
        return cls(db, LoginThrottle(db, keys, throttle_config(auth)), password_login=auth.password_login)

    def _check(self, username: str, password: str, peer: str, protocol: str) -> AuthOutcome:
        key = username.strip().lower()
        # argon2 runs outside the write transaction: on SQLite that transaction holds the
        # database's single write lock, and concurrent logins would queue behind each hash.
        with self.db.read() as session:
            stored_hash = session.execute(
                select(ProAccount.password_hash).where(ProAccount.address == key)).scalar_one_or_none()
        ok = verify_password(stored_hash, password)
        with self.db.write() as session:
            row = session.execute(select(ProAccount).where(ProAccount.address == key)).scalar_one_or_none()
            ok = ok and row is not None and row.password_hash == stored_hash
            if ok and row is not None and row.status != "active":
                outcome = AuthOutcome(False, None, None, None, "auth.disabled")
            elif ok and row is not None and not (self.password_login and row.password_login):
                # checked after the password, answered as a wrong one: the setting is not revealed
                outcome = AuthOutcome(False, None, None, None, "auth.password_refused")
            elif ok and row is not None:
                row.last_login_at = datetime.now(UTC)
                outcome = AuthOutcome(True, row.address, row.id, row.mailbox_id, "auth.ok")
            else:
                outcome = AuthOutcome(False, None, None, None, "auth.failed")
            audit.record(session, actor=f"pro:{key}" if row else "anonymous", action=f"{protocol}.login",
                         subject_ref=f"pro:{row.id}" if row else None, peer=peer,
                         details={"result": outcome.reason})
        return outcome

    def _attempt(self, username: str, password: str, peer: str, protocol: str) -> tuple[AuthOutcome, float]:
        """Throttle check (without waiting for pending attempts), credentials, bookkeeping;
        returns the outcome and the delay to wait."""
        attempt = self.throttle.reserve(username.strip().lower(), peer, time.time())
        if not attempt.allowed:
            return _refused(attempt, protocol), 0.0
        return self._judge(attempt, username, password, peer, protocol)

    def _judge(self, attempt: Reservation, username: str, password: str, peer: str, protocol: str
               ) -> tuple[AuthOutcome, float]:
        """Credentials checked under a reservation; the verdict goes to the throttle. A check that
        ends in an error judged nothing and told the client nothing: the reservation is given back."""
        try:
            outcome = self._check(username, password, peer, protocol)
        except BaseException:
            self.throttle.released(attempt, time.time())
            raise
        if outcome.ok:
            self.throttle.succeeded(attempt, time.time())
            return outcome, 0.0
        self.throttle.failed(attempt, time.time())
        metrics.login_failure(protocol, outcome.reason)
        return outcome, attempt.delay

    async def authenticate(self, username: str, password: str, peer: str, protocol: str) -> AuthOutcome:
        """Verify credentials off the event loop (after waiting for the verdicts of concurrent
        attempts beyond a limit: :meth:`LoginThrottle.admit`); waits the throttle's delay after a failure."""
        attempt = await self.throttle.admit(username.strip().lower(), peer)
        if not attempt.allowed:
            return _refused(attempt, protocol)
        outcome, delay = await asyncio.to_thread(self._judge, attempt, username, password, peer, protocol)
        if delay:
            await asyncio.sleep(delay)
        return outcome


def _refused(attempt: Reservation, protocol: str) -> AuthOutcome:
    """Refused by the throttle: the secret was not checked."""
    metrics.login_failure(protocol, attempt.reason)
    return AuthOutcome(False, None, None, None, attempt.reason, attempt.retry_after)
