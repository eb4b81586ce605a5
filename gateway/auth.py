"""Password authentication for professionals (SMTP AUTH and IMAP LOGIN share it).

argon2 verification runs in a worker thread so the event loop keeps serving; failures
are throttled per account and per client address (delay, then temporary lockout)
with :class:`smtp.throttle.AuthThrottle`; every attempt is audited with the peer address.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select

from gateway import metrics
from gateway.store import audit
from gateway.store.accounts import verify_password
from gateway.store.db import Database
from gateway.store.models import ProAccount
from gateway.store.throttle import SharedThrottle
from smtp.throttle import ThrottleVerdict


@dataclass(frozen=True)
class AuthOutcome:
    ok: bool
    account: str | None  # the canonical (lower-case) address when ok
    account_id: int | None
    mailbox_id: int | None
    reason: str  # "auth.ok" | "auth.failed" | "auth.account_locked" | "auth.ip_locked" | "auth.disabled"
    retry_after: float | None = None


class Throttle(Protocol):
    def verdict(self, account: str | None, ip: str, now: float) -> ThrottleVerdict: ...
    def record_failure(self, account: str | None, ip: str, now: float) -> ThrottleVerdict: ...
    def record_success(self, account: str | None, ip: str, now: float) -> None: ...


class Authenticator:
    """Checks credentials; the throttle is shared by every node (``SharedThrottle``) by default."""

    def __init__(self, db: Database, throttle: Throttle | None = None) -> None:
        self.db = db
        self.throttle: Throttle = throttle or SharedThrottle(db)

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
        """Throttle check, credentials, bookkeeping; returns the outcome and the delay to wait."""
        account = username.strip().lower()
        verdict = self.throttle.verdict(account, peer, time.time())
        if not verdict.allowed:
            metrics.login_failure(protocol, verdict.reason)
            return AuthOutcome(False, None, None, None, verdict.reason, verdict.locked_until), 0.0
        outcome = self._check(username, password, peer, protocol)
        if outcome.ok:
            self.throttle.record_success(account, peer, time.time())
            return outcome, 0.0
        metrics.login_failure(protocol, outcome.reason)
        after = self.throttle.record_failure(account, peer, time.time())
        return outcome, after.delay

    async def authenticate(self, username: str, password: str, peer: str, protocol: str) -> AuthOutcome:
        """Verify credentials off the event loop; waits the throttle's delay after a failure."""
        outcome, delay = await asyncio.to_thread(self._attempt, username, password, peer, protocol)
        if delay:
            await asyncio.sleep(delay)
        return outcome
